package cli

import (
	"fmt"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/image"
	"github.com/spf13/cobra"
)

func init() { commands = append(commands, newImageCmd) }

func newImageCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Build, import, list and remove guest images",
		Long: `A guest image is an uncompressed ELF kernel (vmlinux) and a journal-less ext4 root
filesystem, shared read-only by every workspace booted from it. The guest agent is not
part of the image; it is handed to the guest at boot.

Images live in $HEARTH_HOME/images/<name>/. Build inputs are cached in $HEARTH_CACHE
(default $HEARTH_HOME/cache), so rebuilding an unchanged image takes seconds.`,
		Example: `  hearth image build                 # build debian-12 (kernel ~5 min, rootfs ~1 min)
  hearth image list
  hearth image inspect debian-12 --json
  hearth image import my-img --kernel ./vmlinux --rootfs ./rootfs.ext4
  hearth image rm my-img`,
	}
	cmd.AddCommand(newImageBuildCmd(g), newImageListCmd(g), newImageInspectCmd(g),
		newImageRmCmd(g), newImageImportCmd(g))
	return cmd
}

func newImageBuildCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "build [NAME]",
		Short: "Build an image from a built-in recipe (default " + image.DefaultImage + ")",
		Long: `Build compiles a guest kernel from Debian's linux-source-6.1 package with hearth's config
fragment, makes a Debian root filesystem with debootstrap and mkfs.ext4, and installs both
as the image NAME (the recipe of the same name; built-in recipes: ` + strings.Join(image.Recipes(), ", ") + `).

Kernel and root filesystem are cached by their inputs (config fragment, source package
version, package list, mirror); an unchanged build reuses them. --force rebuilds both.
The Debian mirror comes from the host's apt sources; set HEARTH_DEBIAN_MIRROR to override.
Needs root (debootstrap). Progress goes to stderr; with --json only the image is printed.`,
		Example: `  sudo hearth image build
  sudo hearth image build debian-12 --force
  HEARTH_DEBIAN_MIRROR=http://mirror.example/debian hearth image build --json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			name := image.DefaultImage
			if len(args) == 1 {
				name = args[0]
			}
			opts := image.BuildOptions{Force: force, Log: slog.New(slog.DiscardHandler)}
			if !g.json {
				opts.Progress = func(p image.Progress) { fmt.Fprintln(g.stderr, p.String()) }
			}
			start := time.Now()
			img, err := (&image.Store{Root: g.home}).Build(c.Context(), name, opts)
			if err != nil {
				return err
			}
			if g.json {
				return g.printJSON(img)
			}
			fmt.Fprintf(g.stdout, "image %s ready in %s (%s)\n", img.Name, time.Since(start).Round(time.Millisecond), img.Dir())
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "rebuild kernel and root filesystem even when cached")
	return cmd
}

func newImageListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List images",
		Example: `  hearth image list
  hearth image list --json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			imgs, err := (&image.Store{Root: g.home}).List()
			if err != nil {
				return err
			}
			if g.json {
				return g.printJSON(map[string]any{"images": imgs})
			}
			if len(imgs) == 0 {
				fmt.Fprintf(g.stdout, "no images; build one with `hearth image build %s`\n", image.DefaultImage)
				return nil
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSOURCE\tKERNEL\tKERNEL SIZE\tROOTFS SIZE\tCREATED")
			for _, im := range imgs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", im.Name, im.Source, imageOrDash(im.KernelVersion),
					humanBytes(im.KernelSize), humanBytes(im.RootFSSize), im.CreatedAt.Local().Format("2006-01-02 15:04"))
			}
			return tw.Flush()
		},
	}
}

func newImageInspectCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "inspect NAME",
		Short:   "Show an image's details",
		Example: `  hearth image inspect debian-12`,
		Args:    exactArgs(1, "NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			img, err := (&image.Store{Root: g.home}).Get(args[0])
			if err != nil {
				return err
			}
			if g.json {
				return g.printJSON(img)
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 1, ' ', 0)
			row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
			row("name", img.Name)
			row("source", img.Source)
			row("recipe", imageOrDash(img.Recipe))
			row("created", img.CreatedAt.Local().Format(time.RFC3339))
			row("kernel", img.Kernel)
			row("kernel version", imageOrDash(img.KernelVersion))
			row("kernel size", humanBytes(img.KernelSize))
			row("kernel sha256", img.KernelSHA256)
			row("rootfs", img.RootFS)
			row("rootfs size", humanBytes(img.RootFSSize))
			row("rootfs sha256", img.RootFSSHA256)
			if img.KernelKey != "" {
				row("kernel key", img.KernelKey)
				row("rootfs key", img.RootFSKey)
			}
			return tw.Flush()
		},
	}
}

func newImageRmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "rm NAME",
		Aliases: []string{"remove"},
		Short:   "Remove an image (cached build artefacts are kept)",
		Example: `  hearth image rm my-img`,
		Args:    exactArgs(1, "NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			if err := (&image.Store{Root: g.home}).Remove(args[0]); err != nil {
				return err
			}
			if g.json {
				return g.printJSON(map[string]any{"removed": args[0]})
			}
			fmt.Fprintf(g.stdout, "removed image %s\n", args[0])
			return nil
		},
	}
}

func newImageImportCmd(g *globals) *cobra.Command {
	var kernel, rootfs string
	cmd := &cobra.Command{
		Use:   "import NAME --kernel FILE --rootfs FILE",
		Short: "Import a kernel and root filesystem as an image",
		Long: `Import copies an uncompressed ELF kernel (vmlinux, not a bzImage) and an ext4 root
filesystem image into the store as NAME, replacing an image of that name. The root
filesystem must check clean with e2fsck -fn: it is shared read-only, so one that needs
journal recovery could not be mounted. A journal-less filesystem is best
(mkfs.ext4 -O ^has_journal, or tune2fs -O ^has_journal on a clean one). The kernel needs
virtio-mmio, virtio-blk, ext4 and a serial console built in (see internal/image/kernel.config).`,
		Example: `  hearth image import my-img --kernel ./vmlinux --rootfs ./rootfs.ext4`,
		Args:    exactArgs(1, "NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			if kernel == "" || rootfs == "" {
				return fmt.Errorf("both --kernel and --rootfs are required: %w", errdefs.ErrInvalidArgument)
			}
			img, err := (&image.Store{Root: g.home}).Import(c.Context(), args[0], kernel, rootfs)
			if err != nil {
				return err
			}
			if g.json {
				return g.printJSON(img)
			}
			fmt.Fprintf(g.stdout, "imported image %s (%s)\n", img.Name, img.Dir())
			return nil
		},
	}
	cmd.Flags().StringVar(&kernel, "kernel", "", "uncompressed ELF kernel (vmlinux)")
	cmd.Flags().StringVar(&rootfs, "rootfs", "", "ext4 root filesystem image")
	return cmd
}

func imageOrDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
