package workspace

import (
	"context"
	"fmt"

	"github.com/hearthvm/hearth/internal/errdefs"
)

func checkSeed(path string) error {
	return fmt.Errorf("--seed: %w", errdefs.ErrNotImplemented)
}

func (m *Manager) seed(ctx context.Context, rec *record, path string) error {
	return fmt.Errorf("--seed: %w", errdefs.ErrNotImplemented)
}

func (m *Manager) recordBaseline(ctx context.Context, rec *record) error { return nil }
