package guest

import (
	"context"
	"fmt"

	"github.com/hearthvm/hearth/internal/guestproto"
)

// SetSecrets makes the guest's secret directory (guestproto.SecretsDir, a
// tmpfs) hold exactly files, and its trust hold brokerCA (a PEM
// certificate; nil for none). Errors never hold the files' bytes.
func (c *Client) SetSecrets(ctx context.Context, files []guestproto.SecretFile, brokerCA []byte) error {
	if files == nil {
		files = []guestproto.SecretFile{}
	}
	if _, err := c.Call(ctx, &guestproto.Request{Op: guestproto.OpSecrets, Secrets: &guestproto.SecretsRequest{Files: files, BrokerCA: brokerCA}}); err != nil {
		return fmt.Errorf("write the guest's secret files: %w", err)
	}
	return nil
}

// UnmountSecrets zeroes and removes the guest's secret files and unmounts
// their tmpfs (call before a disk or memory snapshot; SetSecrets brings
// them back).
func (c *Client) UnmountSecrets(ctx context.Context) error {
	if _, err := c.Call(ctx, &guestproto.Request{Op: guestproto.OpSecrets, Secrets: &guestproto.SecretsRequest{Unmount: true}}); err != nil {
		return fmt.Errorf("unmount the guest's secret files: %w", err)
	}
	return nil
}

// ShellSeek sets where shell id's next read without a cursor starts.
func (c *Client) ShellSeek(ctx context.Context, id string, cursor int64) error {
	if _, err := c.Call(ctx, &guestproto.Request{Op: guestproto.OpShellRead, Shell: &guestproto.ShellRequest{ID: id, Cursor: &cursor, Seek: true}}); err != nil {
		return fmt.Errorf("shell %s: set the read position: %w", id, err)
	}
	return nil
}
