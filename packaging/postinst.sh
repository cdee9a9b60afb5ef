#!/bin/sh
# Debian postinst of the hearth package: say how to get a guest image.
set -e
if [ "$1" = configure ]; then
	cat <<'MSG'
hearth is installed (/usr/bin/hearth; its guest agent in /usr/libexec/hearth).

It needs a guest image before it can create workspaces. Build one, once
(debootstrap needs root):

    sudo hearth image build debian-12

This compiles a small kernel from linux-source-6.1 and debootstraps a Debian
root filesystem into $HEARTH_HOME/images/debian-12 (minutes; cached
afterwards). To run hearth as another user, give that user's state
directory: sudo hearth --home ~USER/.local/share/hearth image build debian-12
(or import an image with `hearth image import`). Then:

    hearth doctor
    hearth workspace create --name demo --seed ./project

State (images, workspaces, snapshots) lives in $HEARTH_HOME, by default
~/.local/share/hearth; removing this package leaves it alone.
Docs: /usr/share/doc/hearth/ (docs/install.md first).
MSG
fi
exit 0
