package workspace

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/egress"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/guestproto"
	"github.com/hearthvm/hearth/internal/netstack"
	"github.com/hearthvm/hearth/internal/secrets"
)

// Secrets: values live only in the host store (package secrets); a
// workspace's record names the secrets it exposes and how. After every
// boot the host sends the guest its secret files (applySecrets); env
// secrets travel in each exec's or shell's request that asks for them.
// Everything a workspace hands back is redacted of the values it exposes.

// DefaultSecretHeader is the header a brokered secret goes in when none
// is configured.
const DefaultSecretHeader = "Authorization"

// SecretSetOptions are a secret's metadata given at SecretSet.
type SecretSetOptions = secrets.SetOptions

func (m *Manager) secretStore() *secrets.Store { return secrets.Open(m.root) }

func secretInfo(meta *secrets.Meta, users []string) *api.Secret {
	return &api.Secret{Name: meta.Name, Bytes: meta.Bytes, CreatedAt: meta.CreatedAt, UpdatedAt: meta.UpdatedAt,
		Hosts: meta.Hosts, Headers: meta.Headers, Workspaces: users}
}

// SecretSet stores a secret's value (replacing any it had) in the host
// store. Running workspaces that expose it see the new value with their
// next exec (env) or at once (file: the files are sent again).
func (m *Manager) SecretSet(ctx context.Context, name string, value []byte, o SecretSetOptions) (*api.Secret, error) {
	meta, err := m.secretStore().Set(name, value, o)
	if err != nil {
		return nil, err
	}
	users := m.secretUsers(name)
	for _, ref := range users {
		rec, err := m.resolve(ref)
		if err != nil || m.vmState(rec.ID).state != api.StateRunning {
			continue
		}
		if err := m.applySecrets(ctx, rec, false); err != nil {
			m.log.Warn("refresh secret files", "workspace", rec.ID, "secret", name, "err", err)
		}
		if err := m.reloadBroker(ctx, rec); err != nil {
			m.log.Warn("refresh brokered secrets", "workspace", rec.ID, "secret", name, "err", err)
		}
	}
	return secretInfo(meta, users), nil
}

// SecretList lists the stored secrets: names and metadata, never values.
func (m *Manager) SecretList(ctx context.Context) ([]api.Secret, error) {
	l, err := m.secretStore().List()
	if err != nil {
		return nil, err
	}
	out := make([]api.Secret, 0, len(l))
	for i := range l {
		out = append(out, *secretInfo(&l[i], m.secretUsers(l[i].Name)))
	}
	return out, nil
}

// SecretRemove deletes a stored secret. A secret some workspace exposes
// is refused: remove it from them first (WorkspaceSecretRemove).
func (m *Manager) SecretRemove(ctx context.Context, name string) (*api.Secret, error) {
	meta, err := m.secretStore().Meta(name)
	if err != nil {
		return nil, err
	}
	if users := m.secretUsers(name); len(users) > 0 {
		return nil, fmt.Errorf("secret %s is exposed to %s: remove it there first with workspace_secret_rm: %w",
			name, strings.Join(users, ", "), errdefs.ErrFailedPrecondition)
	}
	if _, err := m.secretStore().Remove(name); err != nil {
		return nil, err
	}
	return secretInfo(meta, nil), nil
}

// secretUsers names the workspaces exposing secret name.
func (m *Manager) secretUsers(name string) []string {
	rs, _ := m.records()
	var out []string
	for _, r := range rs {
		if slices.ContainsFunc(r.Secrets, func(s api.WorkspaceSecret) bool { return s.Name == name }) {
			out = append(out, r.Name)
		}
	}
	return out
}

// SecretExposure is how a workspace exposes one secret.
type SecretExposure struct {
	Name string
	// Mode is file, env or brokered (default env).
	Mode string
	// Hosts and Headers override the stored secret's for brokered.
	Hosts, Headers []string
}

// ParseSecretSpec parses NAME or NAME:MODE.
func ParseSecretSpec(spec string) (SecretExposure, error) {
	name, mode, _ := strings.Cut(spec, ":")
	e := SecretExposure{Name: name, Mode: mode}
	if err := secrets.ValidateName(name); err != nil {
		return e, errdefs.Arg("secrets", "%q: %v", spec, strings.TrimPrefix(err.Error(), "name: "))
	}
	return e, nil
}

// exposure resolves e against the store into a record entry. The value is
// not read here, only checked to exist.
func (m *Manager) exposure(e SecretExposure, arg string) (api.WorkspaceSecret, error) {
	if e.Mode == "" {
		e.Mode = secrets.ModeEnv
	}
	if !secrets.ValidMode(e.Mode) {
		return api.WorkspaceSecret{}, errdefs.Arg(arg, "secret %s: mode %q: use file, env or brokered", e.Name, e.Mode)
	}
	meta, err := m.secretStore().Meta(e.Name)
	if err != nil {
		return api.WorkspaceSecret{}, err
	}
	ws := api.WorkspaceSecret{Name: e.Name, Mode: e.Mode}
	if e.Mode != secrets.ModeBrokered {
		if len(e.Hosts) > 0 || len(e.Headers) > 0 {
			return ws, errdefs.Arg("hosts", "secret %s: hosts and headers apply to brokered secrets, not %s", e.Name, e.Mode)
		}
		return ws, nil
	}
	hosts, headers := meta.Hosts, meta.Headers
	if len(e.Hosts) > 0 {
		if hosts, err = secrets.NormalizeHosts(e.Hosts); err != nil {
			return ws, err
		}
	}
	if len(e.Headers) > 0 {
		if headers, err = secrets.NormalizeHeaders(e.Headers); err != nil {
			return ws, err
		}
	}
	if len(hosts) == 0 {
		return ws, errdefs.Arg("hosts", "secret %s: a brokered secret needs the hosts it may be sent to (there is no any-host default): give hosts, or store them with the secret (secret_set's hosts)", e.Name)
	}
	if len(headers) == 0 {
		headers = []string{DefaultSecretHeader}
	}
	var b [16]byte
	rand.Read(b[:])
	ws.Placeholder = "hearth-placeholder-" + e.Name + "-" + hex.EncodeToString(b[:])
	ws.Hosts, ws.Headers = hosts, headers
	return ws, nil
}

// createSecrets resolves create's secret specs.
func (m *Manager) createSecrets(specs []string) ([]api.WorkspaceSecret, error) {
	var out []api.WorkspaceSecret
	for _, spec := range specs {
		e, err := ParseSecretSpec(spec)
		if err != nil {
			return nil, err
		}
		if slices.ContainsFunc(out, func(s api.WorkspaceSecret) bool { return s.Name == e.Name }) {
			return nil, errdefs.Arg("secrets", "secret %s given twice", e.Name)
		}
		ws, err := m.exposure(e, "secrets")
		if err != nil {
			return nil, err
		}
		out = append(out, ws)
	}
	return out, nil
}

// WorkspaceSecretAdd exposes a stored secret to a workspace (replacing
// how it was exposed). A running workspace gets its files at once; env
// secrets reach the execs and shells started from then on.
func (m *Manager) WorkspaceSecretAdd(ctx context.Context, ref string, e SecretExposure) (*api.Workspace, error) {
	if err := secrets.ValidateName(e.Name); err != nil {
		return nil, err
	}
	ws, err := m.exposure(e, "mode")
	if err != nil {
		return nil, err
	}
	return m.changeSecrets(ctx, ref, "secret add", func(rec *record) error {
		i := slices.IndexFunc(rec.Secrets, func(s api.WorkspaceSecret) bool { return s.Name == e.Name })
		if i >= 0 {
			rec.Secrets[i] = ws
		} else {
			rec.Secrets = append(rec.Secrets, ws)
		}
		return nil
	})
}

// WorkspaceSecretRemove stops exposing a secret to a workspace: its file
// goes at once; running processes keep the environment they started with.
func (m *Manager) WorkspaceSecretRemove(ctx context.Context, ref, name string) (*api.Workspace, error) {
	return m.changeSecrets(ctx, ref, "secret rm", func(rec *record) error {
		i := slices.IndexFunc(rec.Secrets, func(s api.WorkspaceSecret) bool { return s.Name == name })
		if i < 0 {
			return fmt.Errorf("workspace %s does not expose a secret named %q: %w", rec.Name, name, errdefs.ErrNotFound)
		}
		rec.Secrets = slices.Delete(rec.Secrets, i, i+1)
		return nil
	})
}

func (m *Manager) changeSecrets(ctx context.Context, ref, op string, change func(*record) error) (*api.Workspace, error) {
	l, err := m.beginLifecycle(ctx, ref, op)
	if err != nil {
		return nil, err
	}
	defer l.release()
	rec := l.rec
	if err := change(rec); err != nil {
		return nil, err
	}
	if err := m.writeRecord(rec); err != nil {
		return nil, err
	}
	if err := m.writeBroker(rec); err != nil {
		return nil, err
	}
	if m.vmState(rec.ID).state == api.StateRunning {
		if err := m.reloadBroker(ctx, rec); err != nil {
			return nil, err
		}
		if err := m.applySecrets(ctx, rec, true); err != nil {
			return nil, err
		}
	}
	return m.info(rec), nil
}

// exposed returns the workspace's secrets with their values from the
// store. A secret removed from the store meanwhile is an error naming it.
func (m *Manager) exposed(rec *record) ([]exposedSecret, error) {
	out := make([]exposedSecret, 0, len(rec.Secrets))
	for _, s := range rec.Secrets {
		v, _, err := m.secretStore().Get(s.Name)
		if err != nil {
			return nil, fmt.Errorf("workspace %s exposes secret %s: %w", rec.Name, s.Name, err)
		}
		out = append(out, exposedSecret{WorkspaceSecret: s, value: v})
	}
	return out, nil
}

type exposedSecret struct {
	api.WorkspaceSecret
	value []byte
}

// guestValue is what the guest sees: the value, or a brokered placeholder.
func (s *exposedSecret) guestValue() []byte {
	if s.Mode == secrets.ModeBrokered {
		return []byte(s.Placeholder)
	}
	return s.value
}

// applySecrets sends a running guest its secret files (file and brokered
// secrets): after every boot and every change. With none (and not
// always), nothing is sent: a guest booted without secret files has none
// to remove.
func (m *Manager) applySecrets(ctx context.Context, rec *record, always bool) error {
	exp, err := m.exposed(rec)
	if err != nil {
		return err
	}
	var files []guestproto.SecretFile
	var ca []byte
	for i := range exp {
		if exp[i].Mode == secrets.ModeFile || exp[i].Mode == secrets.ModeBrokered {
			files = append(files, guestproto.SecretFile{Name: exp[i].Name, Data: exp[i].guestValue()})
		}
		if exp[i].Mode == secrets.ModeBrokered && ca == nil {
			c, err := egress.LoadOrCreateCA(m.brokerCAPath(rec.ID))
			if err != nil {
				return fmt.Errorf("workspace %s: %w", rec.Name, err)
			}
			ca = c.CertPEM()
		}
	}
	c, err := m.client(rec)
	if err != nil {
		return err
	}
	if len(files) == 0 && !always {
		return nil
	}
	if err := c.SetSecrets(ctx, files, ca); err != nil {
		return fmt.Errorf("workspace %s: %w", rec.Name, err)
	}
	return nil
}

// UnmountSecrets wipes (zeroes) and removes a running workspace's secret
// files and unmounts their tmpfs: call it before a disk or memory
// snapshot, and applySecrets (or RemountSecrets) after it, and after a
// restore.
func (m *Manager) UnmountSecrets(ctx context.Context, ref string) error {
	rec, err := m.resolve(ref)
	if err != nil {
		return err
	}
	c, err := m.client(rec)
	if err != nil {
		return err
	}
	return c.UnmountSecrets(ctx)
}

// RemountSecrets sends a running workspace its secret files again (after
// a snapshot or a restore).
func (m *Manager) RemountSecrets(ctx context.Context, ref string) error {
	rec, err := m.resolve(ref)
	if err != nil {
		return err
	}
	return m.applySecrets(ctx, rec, false)
}

// SecretsBlockMemorySnapshot says why a memory snapshot of the workspace
// would capture a secret value ("" when none would): a process may hold
// an env secret in its environment, which no unmount removes.
func (m *Manager) SecretsBlockMemorySnapshot(ref string) (string, error) {
	rec, err := m.resolve(ref)
	if err != nil {
		return "", err
	}
	for _, s := range rec.Secrets {
		if s.Mode == secrets.ModeEnv {
			return fmt.Sprintf("workspace %s exposes %s as an environment variable, which running processes may hold in memory: remove it (workspace secret rm) and restart the workspace, or take a disk snapshot", rec.Name, s.Name), nil
		}
	}
	return "", nil
}

// secretEnv returns the "NAME=value" entries for an exec or shell that
// asks for names (and every env secret when the workspace says so).
// Brokered secrets give their placeholder.
func (m *Manager) secretEnv(rec *record, names []string) ([]string, error) {
	if len(names) == 0 && !rec.SecretEnvAll {
		return nil, nil
	}
	for _, n := range names {
		i := slices.IndexFunc(rec.Secrets, func(s api.WorkspaceSecret) bool { return s.Name == n })
		if i < 0 {
			if err := secrets.ValidateName(n); err != nil {
				return nil, errdefs.Arg("secret_env", "%q: not a secret name", n)
			}
			return nil, errdefs.Mark(fmt.Errorf("secret_env: workspace %s does not expose a secret named %q: expose it with workspace_secret_add", rec.Name, n), errdefs.ErrNotFound)
		}
		if rec.Secrets[i].Mode == secrets.ModeFile {
			return nil, errdefs.Arg("secret_env", "workspace %s exposes %s as a file (/run/secrets/%s), not in the environment: add it with mode env", rec.Name, n, n)
		}
	}
	exp, err := m.exposed(rec)
	if err != nil {
		return nil, err
	}
	var env []string
	for i := range exp {
		s := &exp[i]
		if s.Mode == secrets.ModeFile || (!rec.SecretEnvAll && !slices.Contains(names, s.Name)) {
			continue
		}
		env = append(env, s.Name+"="+string(s.guestValue()))
	}
	return env, nil
}

// redactor returns the redactor of the values a workspace exposes (nil
// when it exposes none, or they cannot be read: then there is nothing in
// the guest to redact either).
func (m *Manager) redactor(rec *record) *secrets.Redactor {
	if rec == nil || len(rec.Secrets) == 0 {
		return nil
	}
	var secs []secrets.Secret
	for _, s := range rec.Secrets {
		v, _, err := m.secretStore().Get(s.Name)
		if err != nil {
			continue
		}
		secs = append(secs, secrets.Secret{Name: s.Name, Value: v})
	}
	return secrets.NewRedactor(secs)
}

// Redactor returns the redactor of workspace ref's secret values (nil when
// it has none): for output hearth hands back that does not pass through
// Exec or the shells (service logs).
func (m *Manager) Redactor(ref string) (*secrets.Redactor, error) {
	rec, err := m.resolve(ref)
	if err != nil {
		return nil, err
	}
	return m.redactor(rec), nil
}

// SecretBroker returns the egress substitution of workspace ref's
// brokered secrets (see secrets.Broker): what the supervisor's egress
// proxy (package egress) applies, built there from the broker file.
func (m *Manager) SecretBroker(ref string) (*secrets.Broker, error) {
	rec, err := m.resolve(ref)
	if err != nil {
		return nil, err
	}
	return m.secretStore().Broker(brokerExposures(rec))
}

func brokerExposures(rec *record) []secrets.Exposure {
	var exps []secrets.Exposure
	for _, s := range rec.Secrets {
		if s.Mode == secrets.ModeBrokered {
			exps = append(exps, secrets.Exposure{Name: s.Name, Mode: s.Mode, Placeholder: s.Placeholder, Hosts: s.Hosts, Headers: s.Headers})
		}
	}
	return exps
}

// The broker file (egress.Config) tells the workspace's supervisor which
// brokered secrets to substitute at egress; the CA file (certificate and
// key, 0600) is the workspace's own, made at the first brokered secret.
// Both live in the workspace's directory on the host, never in the guest
// (the guest gets the CA's certificate only).
func (m *Manager) brokerPath(id string) string   { return filepath.Join(m.dir(id), "broker.json") }
func (m *Manager) brokerCAPath(id string) string { return filepath.Join(m.dir(id), "broker-ca.pem") }

// writeBroker saves the workspace's broker file (removing it when the
// workspace has no brokered secret).
func (m *Manager) writeBroker(rec *record) error {
	exps := brokerExposures(rec)
	if len(exps) == 0 {
		return egress.WriteConfig(m.brokerPath(rec.ID), nil)
	}
	if _, err := egress.LoadOrCreateCA(m.brokerCAPath(rec.ID)); err != nil {
		return fmt.Errorf("workspace %s: %w", rec.Name, err)
	}
	return egress.WriteConfig(m.brokerPath(rec.ID), &egress.Config{Store: m.root, CA: m.brokerCAPath(rec.ID), Secrets: exps})
}

// reloadBroker has a running workspace's network stack re-read its broker
// file (and its policy). A workspace without a network has no egress to
// broker.
func (m *Manager) reloadBroker(ctx context.Context, rec *record) error {
	if !m.hasStack(rec.ID) {
		return nil
	}
	if err := netstack.ReloadIn(ctx, m.runDir(rec.ID)); err != nil {
		return errdefs.Mark(fmt.Errorf("workspace %s: the running VM's network did not take the brokered secrets: %w", rec.Name, err), errdefs.ErrUnavailable)
	}
	return nil
}

// redactErr redacts an error's message with the workspace's redactor.
func (m *Manager) redactErr(rec *record, err error) error {
	if err == nil || rec == nil || len(rec.Secrets) == 0 {
		return err
	}
	return m.redactor(rec).Error(err)
}

// execSecrets is what an exec needs of the workspace's secrets: the env
// entries it asked for and the redactor of its output.
type execSecrets struct {
	env []string
	red *secrets.Redactor
}

func (m *Manager) execSecrets(rec *record, o *ExecOptions) (*execSecrets, error) {
	env, err := m.secretEnv(rec, o.SecretEnv)
	if err != nil {
		return nil, err
	}
	return &execSecrets{env: env, red: m.redactor(rec)}, nil
}

// request is the guest request with the secret env entries added (they
// win over entries of the same name).
func (x *execSecrets) request(o *ExecOptions) *guestproto.ExecRequest {
	r := o.request()
	if len(x.env) > 0 {
		r.Env = append(slices.Clip(r.Env), x.env...)
	}
	return r
}

// command redacts what the command log keeps of a command line.
func (x *execSecrets) command(c api.Command) api.Command {
	if x.red == nil {
		return c
	}
	if c.Argv != nil {
		argv := make([]string, len(c.Argv))
		for i, a := range c.Argv {
			argv[i] = x.red.String(a)
		}
		c.Argv = argv
	}
	c.Shell = x.red.String(c.Shell)
	return c
}

// result redacts a result read back from the command log (output logged
// before a secret was added to the workspace, a message).
func (x *execSecrets) result(r *api.ExecResult) *api.ExecResult {
	redactResult(x.red, r)
	return r
}

func redactResult(red *secrets.Redactor, r *api.ExecResult) {
	if red == nil || r == nil {
		return
	}
	r.Message = red.String(r.Message)
	if r.StdoutEncoding == "" {
		r.Stdout = red.String(r.Stdout)
	}
	if r.StderrEncoding == "" {
		r.Stderr = red.String(r.Stderr)
	}
}

// redact is what the supervisor needs to redact a detached command's
// output.
func (x *execSecrets) redact() []secrets.Secret {
	if x.red == nil {
		return nil
	}
	return x.red.Secrets()
}

// redactShellRead redacts a shell read's output. While the shell runs, a
// tail that may begin a secret value (at most the longest form less one
// byte) is held back: NextCursor stops before it, so the next read
// returns it whole with what follows.
func redactShellRead(red *secrets.Redactor, r *guestproto.ShellReadResult) []byte {
	if red == nil {
		return r.Output
	}
	if r.Shell.State != "running" {
		return red.Bytes(r.Output)
	}
	out, held := red.Split(r.Output)
	r.NextCursor -= int64(held)
	return slices.Clip(out)
}
