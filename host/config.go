package host

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/agenthost/agenthost/agent/mcptools"
	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"
)

// Defaults of the settings (seed 002).
const (
	DefaultPort               = 8000
	DefaultWorkers            = 8
	DefaultResultTTL          = 24 * time.Hour
	DefaultMaxFileSizeMB      = 10
	DefaultMaxFilesPerRequest = 10
	DefaultCoDir              = ".co"
	// ConfigFileName is host.yaml's name inside the data directory.
	ConfigFileName = "host.yaml"
)

// Config is the resolved configuration of a host: code options first, then
// host.yaml, then defaults.
type Config struct {
	// Name names the agent when the host builds it (the CLI); a Go
	// program's factory names its own agent.
	Name     string
	Summary  string
	Examples []string
	// Trust is the level: open, careful or strict; "custom" when TrustPolicy
	// or TrustText holds a policy.
	Trust string
	// TrustPolicy is the raw YAML of a `trust:` mapping (seed 002's
	// advanced configuration), for a policy gate to interpret; nil when
	// trust is a level.
	TrustPolicy []byte
	// TrustText is a natural-language policy, or the path of a policy file
	// (markdown with YAML front matter, or YAML), given as `trust:`.
	TrustText string
	// Whitelist and Blacklist apply to signed callers, which the policy
	// gate verifies.
	Whitelist AccessList
	Blacklist AccessList
	Port      int
	// Workers bounds concurrent agent runs; Queue bounds the runs waiting
	// for a worker, past which requests get 503.
	Workers   int
	Queue     int
	ResultTTL time.Duration
	// RelayURL is where to announce; "" disables the relay.
	RelayURL string
	// PublicURL is where clients reach the agent directly, announced on
	// the relay instead of the LAN addresses; "" announces those.
	PublicURL string
	Reload    bool
	// CoDir is the data directory: keys, database, uploads.
	CoDir string
	// MaxFileSizeMB and MaxFilesPerRequest limit uploads.
	MaxFileSizeMB      float64
	MaxFilesPerRequest int
	// Model and SystemPrompt, when set, override the factory's agent.
	Model        string
	SystemPrompt string
	// SystemPromptFile is the file system_prompt named, if it named one.
	SystemPromptFile string
	// File is the host.yaml that was read, "" if none.
	File string
	// LegacySignatures accepts signed requests of older clients: payloads
	// without "to" (which another agent could replay here) and signed
	// inputs whose session or attachments no payload digest covers. Off by
	// default.
	LegacySignatures bool
	// AllowedOrigins are the browser origins (scheme://host[:port], "*"
	// wildcards in the host or port) whose pages may call the API and open
	// WebSockets, besides the host's own pages and loopback origins.
	AllowedOrigins []string
	// MaxConnsPerIP bounds one client address's open connections.
	MaxConnsPerIP int
	// UploadQuotaMB bounds the files one caller keeps in the uploads
	// directory at a time.
	UploadQuotaMB float64
	// MCPServers are the MCP servers whose tools the agent gets, by name
	// (host.yaml mcp_servers, in OpenCode's shape; see docs/mcp.md).
	MCPServers map[string]mcptools.Config
}

// Defaults of the limits.
const (
	DefaultMaxConnsPerIP = 64
	DefaultUploadQuotaMB = 100
)

// AccessList is a whitelist or blacklist: addresses given inline, or a file
// of them (one per line, # comments).
type AccessList struct {
	Addresses []string
	File      string
}

// UnmarshalYAML accepts a list of addresses or a file path.
func (l *AccessList) UnmarshalYAML(node ast.Node) error {
	switch n := unwrap(node).(type) {
	case *ast.StringNode:
		l.File = n.Value
		return nil
	case *ast.NullNode:
		return nil
	case *ast.SequenceNode:
		for _, v := range n.Values {
			s, ok := unwrap(v).(*ast.StringNode)
			if !ok {
				return &configError{line: v.GetToken().Position.Line, msg: "want an address (a string)"}
			}
			l.Addresses = append(l.Addresses, s.Value)
		}
		return nil
	}
	return &configError{line: node.GetToken().Position.Line, msg: "want a file path or a list of addresses"}
}

// TrustSetting is the `trust` key: a level name, a policy mapping, or a
// policy text or file.
type TrustSetting struct {
	Level  string
	Policy []byte
	Text   string
}

// TrustCustom is Config.Trust for a policy that is not a level.
const TrustCustom = "custom"

// trustSetting classifies a trust string: a level, or policy text or a
// policy file (anything with a space, a line break or a file extension). A
// single other word stays a "level", which validation rejects, so a
// misspelt level is an error rather than a policy.
func trustSetting(v string) *TrustSetting {
	switch t := strings.TrimSpace(v); {
	case t == TrustOpen || t == TrustCareful || t == TrustStrict:
		return &TrustSetting{Level: t}
	case strings.ContainsAny(t, " \t\r\n") || filepath.Ext(t) != "":
		return &TrustSetting{Text: v}
	}
	return &TrustSetting{Level: v}
}

// UnmarshalYAML accepts a level string or a mapping, kept as raw YAML.
func (t *TrustSetting) UnmarshalYAML(node ast.Node) error {
	n := unwrap(node)
	if lit, ok := n.(*ast.LiteralNode); ok && lit.Value != nil { // trust: |
		n = lit.Value
	}
	switch n := n.(type) {
	case *ast.StringNode:
		if ts := trustSetting(n.Value); ts.Text != "" || ts.Level == TrustOpen || ts.Level == TrustCareful || ts.Level == TrustStrict {
			*t = *ts
			return nil
		}
		return &configError{line: n.GetToken().Position.Line,
			msg: fmt.Sprintf("%q is not a trust level; want open, careful or strict, a policy mapping, a policy in words or a policy file", clipString(n.Value, 40))}
	case *ast.MappingNode:
		t.Policy = []byte(n.String())
		return nil
	}
	return &configError{line: node.GetToken().Position.Line, msg: "want a trust level (open, careful, strict) or a policy mapping"}
}

func unwrap(n ast.Node) ast.Node {
	for {
		switch v := n.(type) {
		case *ast.CommentGroupNode:
			return n
		case *ast.TagNode:
			n = v.Value
		case *ast.AnchorNode:
			n = v.Value
		default:
			return n
		}
	}
}

// fileConfig is host.yaml. Pointers tell an absent key from a zero value,
// so the file only overrides what it sets. Code options fill the same
// struct, which is how they take precedence.
type fileConfig struct {
	Name               *string       `yaml:"name"`
	Summary            *string       `yaml:"summary"`
	Examples           *[]string     `yaml:"examples"`
	Trust              *TrustSetting `yaml:"trust"`
	Whitelist          *AccessList   `yaml:"whitelist"`
	Blacklist          *AccessList   `yaml:"blacklist"`
	Port               *int          `yaml:"port"`
	Workers            *int          `yaml:"workers"`
	Queue              *int          `yaml:"queue"`
	ResultTTL          *int          `yaml:"result_ttl"`
	RelayURL           *string       `yaml:"relay_url"`
	PublicURL          *string       `yaml:"public_url"`
	Reload             *bool         `yaml:"reload"`
	CoDir              *string       `yaml:"co_dir"`
	MaxFileSize        *float64      `yaml:"max_file_size"`
	MaxFilesPerRequest *int          `yaml:"max_files_per_request"`
	Model              *string       `yaml:"model"`
	SystemPrompt       *string       `yaml:"system_prompt"`
	LegacySignatures   *bool         `yaml:"legacy_signatures"`
	AllowedOrigins     *[]string     `yaml:"allowed_origins"`
	MaxConnsPerIP      *int          `yaml:"max_connections_per_ip"`
	UploadQuotaMB      *float64      `yaml:"upload_quota_mb"`
	MCPServers         *MCPServers   `yaml:"mcp_servers"`
}

// MCPServers is the mcp_servers key: MCP servers by name, each in
// OpenCode's shape (mcptools.Config).
type MCPServers map[string]mcptools.Config

// mcpKeys are the keys of one mcp_servers entry, for error messages.
var mcpKeys = func() []string {
	var keys []string
	t := reflect.TypeFor[mcptools.Config]()
	for i := 0; i < t.NumField(); i++ {
		k, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		keys = append(keys, k)
	}
	return keys
}()

// UnmarshalYAML reads each server strictly, so that a misspelt key (or
// Claude Desktop's "args" and "env") is an error naming the server.
func (m *MCPServers) UnmarshalYAML(node ast.Node) error {
	n, ok := unwrap(node).(*ast.MappingNode)
	if !ok {
		if _, null := unwrap(node).(*ast.NullNode); null {
			*m = MCPServers{}
			return nil
		}
		return &configError{line: node.GetToken().Position.Line, key: "mcp_servers", msg: "want a mapping of server names to servers"}
	}
	out := MCPServers{}
	for _, kv := range n.Values {
		name := kv.Key.String()
		if s, ok := unwrap(kv.Key).(*ast.StringNode); ok {
			name = s.Value
		}
		at := kv.Key.GetToken().Position.Line
		if _, dup := out[name]; dup {
			return &configError{line: at, key: "mcp_servers", msg: fmt.Sprintf("server %q is given twice", name)}
		}
		var c mcptools.Config
		if err := yaml.NodeToValue(kv.Value, &c, yaml.DisallowUnknownField()); err != nil {
			msg := "want a mapping with " + strings.Join(mcpKeys, ", ")
			var unknown *yaml.UnknownFieldError
			if errors.As(err, &unknown) {
				key := strings.TrimSuffix(strings.TrimPrefix(unknown.Message, `unknown field "`), `"`)
				msg = fmt.Sprintf("unknown key %q; the keys are %s (command is one list: the program, then its arguments)", key, strings.Join(mcpKeys, ", "))
				at = line(unknown.Token)
			} else if te := describeYAMLError(err); te.msg != "" {
				msg = te.msg
				if te.line > 0 {
					at = te.line
				}
			}
			return &configError{line: at, key: "mcp_servers", msg: fmt.Sprintf("server %q: %s", name, msg)}
		}
		out[name] = c
	}
	*m = out
	return nil
}

// configError is an error at a line of host.yaml.
type configError struct {
	line int
	key  string
	msg  string
}

func (e *configError) Error() string {
	if e.key != "" {
		return fmt.Sprintf("%d: key %q: %s", e.line, e.key, e.msg)
	}
	return fmt.Sprintf("%d: %s", e.line, e.msg)
}

// ErrConfig wraps every host.yaml error.
var ErrConfig = errors.New("invalid host.yaml")

// parseConfig parses host.yaml's bytes strictly: unknown keys and wrong
// types are errors naming the key and line ("host.yaml:3: key "port":
// want an integer, got string"). name is used in messages.
func parseConfig(data []byte, name string) (*fileConfig, error) {
	var fc fileConfig
	if len(bytes.TrimSpace(data)) == 0 {
		return &fc, nil
	}
	var ce *configError
	if err := yaml.UnmarshalWithOptions(data, &fc, yaml.DisallowUnknownField()); err != nil {
		ce = describeYAMLError(err)
	} else if err := fc.validate(); err != nil {
		ce = err
	}
	if ce != nil {
		if ce.key == "" && ce.line > 0 {
			ce.key = keyAt(data, ce.line)
		}
		if ce.line == 0 && ce.key != "" {
			ce.line = lineOf(data, ce.key)
		}
		return nil, fmt.Errorf("%w: %s:%v", ErrConfig, name, ce)
	}
	return &fc, nil
}

// keyAt returns the top-level key whose value spans line (1-based).
func keyAt(data []byte, line int) string {
	lines := strings.Split(string(data), "\n")
	for i := min(line, len(lines)) - 1; i >= 0; i-- {
		l := lines[i]
		if l == "" || l[0] == ' ' || l[0] == '\t' || l[0] == '#' || l[0] == '-' {
			continue
		}
		if k, _, ok := strings.Cut(l, ":"); ok {
			return strings.TrimSpace(k)
		}
		return ""
	}
	return ""
}

// lineOf returns the line where the top-level key is set.
func lineOf(data []byte, key string) int {
	for i, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, key+":") {
			return i + 1
		}
	}
	return 0
}

// yamlKeys maps Go field names of fileConfig to their keys.
var yamlKeys = func() map[string]string {
	m := map[string]string{}
	t := reflect.TypeFor[fileConfig]()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		m[f.Name] = f.Tag.Get("yaml")
	}
	return m
}()

func describeYAMLError(err error) *configError {
	var ce *configError
	if errors.As(err, &ce) {
		return ce
	}
	var unknown *yaml.UnknownFieldError
	if errors.As(err, &unknown) {
		key := strings.TrimSuffix(strings.TrimPrefix(unknown.Message, `unknown field "`), `"`)
		known := make([]string, 0, len(yamlKeys))
		for _, k := range yamlKeys {
			known = append(known, k)
		}
		slices.Sort(known)
		return &configError{line: line(unknown.Token), key: key, msg: "unknown key; the keys are " + strings.Join(known, ", ")}
	}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		key := ""
		if te.StructFieldName != nil {
			f := *te.StructFieldName
			if i := strings.LastIndexByte(f, '.'); i >= 0 {
				f = f[i+1:]
			}
			key = yamlKeys[f]
		}
		return &configError{line: line(te.Token), key: key, msg: fmt.Sprintf("want %s, got %s", kindName(te.DstType), te.SrcType)}
	}
	var nt *yaml.UnexpectedNodeTypeError
	if errors.As(err, &nt) {
		name := func(t ast.NodeType) string {
			switch t {
			case ast.SequenceType:
				return "a list"
			case ast.MappingType:
				return "a mapping"
			case ast.IntegerType, ast.FloatType:
				return "a number"
			case ast.StringType:
				return "a string"
			}
			return t.YAMLName()
		}
		return &configError{line: line(nt.Token), msg: fmt.Sprintf("want %s, got %s", name(nt.Expected), name(nt.Actual))}
	}
	var ye yaml.Error
	if errors.As(err, &ye) {
		return &configError{line: line(ye.GetToken()), msg: ye.GetMessage()}
	}
	return &configError{msg: err.Error()}
}

func line(tk *token.Token) int {
	if tk == nil {
		return 0
	}
	return tk.Position.Line
}

func kindName(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int64:
		return "an integer"
	case reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Slice:
		return "a list"
	}
	return t.String()
}

func (fc *fileConfig) validate() *configError {
	pos := func(key string, v *int) *configError {
		if v != nil && *v < 1 {
			return &configError{key: key, msg: fmt.Sprintf("must be at least 1, got %d", *v)}
		}
		return nil
	}
	for _, c := range []struct {
		key string
		v   *int
	}{{"workers", fc.Workers}, {"queue", fc.Queue}, {"result_ttl", fc.ResultTTL}, {"max_files_per_request", fc.MaxFilesPerRequest}, {"max_connections_per_ip", fc.MaxConnsPerIP}} {
		if err := pos(c.key, c.v); err != nil {
			return err
		}
	}
	if fc.Port != nil && (*fc.Port < 0 || *fc.Port > 65535) {
		return &configError{key: "port", msg: fmt.Sprintf("%d is not a TCP port", *fc.Port)}
	}
	if fc.MaxFileSize != nil && *fc.MaxFileSize <= 0 {
		return &configError{key: "max_file_size", msg: fmt.Sprintf("must be positive, got %v", *fc.MaxFileSize)}
	}
	if fc.UploadQuotaMB != nil && *fc.UploadQuotaMB <= 0 {
		return &configError{key: "upload_quota_mb", msg: fmt.Sprintf("must be positive, got %v", *fc.UploadQuotaMB)}
	}
	if fc.AllowedOrigins != nil {
		for _, o := range *fc.AllowedOrigins {
			if _, err := parseOriginPattern(o); err != nil {
				return &configError{key: "allowed_origins", msg: err.Error()}
			}
		}
	}
	if fc.MCPServers != nil {
		for name, c := range *fc.MCPServers {
			if err := c.Validate(name); err != nil {
				return &configError{key: "mcp_servers", msg: strings.TrimPrefix(err.Error(), mcptools.ErrConfig.Error()+": ")}
			}
		}
	}
	if fc.Examples != nil && len(*fc.Examples) > 20 {
		return &configError{key: "examples", msg: fmt.Sprintf("at most 20 examples, got %d", len(*fc.Examples))}
	}
	return nil
}

// overlay sets every field of fc that top sets.
func (fc *fileConfig) overlay(top *fileConfig) {
	dst, src := reflect.ValueOf(fc).Elem(), reflect.ValueOf(top).Elem()
	for i := 0; i < dst.NumField(); i++ {
		if !src.Field(i).IsNil() {
			dst.Field(i).Set(src.Field(i))
		}
	}
}

// loadConfig reads the config file (a missing default file is no error)
// and resolves code options over it over the defaults. dir is the working
// directory relative paths start from.
func loadConfig(code *fileConfig, path string, explicit bool, dir string) (*Config, error) {
	merged := &fileConfig{}
	cfg := &Config{}
	if path != "" {
		if !filepath.IsAbs(path) {
			path = filepath.Join(dir, path)
		}
		data, err := os.ReadFile(path)
		switch {
		case err == nil:
			fc, err := parseConfig(data, path)
			if err != nil {
				return nil, err
			}
			merged = fc
			cfg.File = path
		case errors.Is(err, fs.ErrNotExist) && !explicit:
		default:
			return nil, fmt.Errorf("%w: %v", ErrConfig, err)
		}
	}
	merged.overlay(code)
	return merged.resolve(cfg, dir)
}

func (fc *fileConfig) resolve(cfg *Config, dir string) (*Config, error) {
	str := func(p *string, def string) string {
		if p != nil {
			return *p
		}
		return def
	}
	num := func(p *int, def int) int {
		if p != nil {
			return *p
		}
		return def
	}
	cfg.Name = str(fc.Name, "")
	cfg.Summary = str(fc.Summary, "")
	if fc.Examples != nil {
		cfg.Examples = *fc.Examples
	}
	cfg.Trust = TrustCareful
	if fc.Trust != nil {
		if fc.Trust.Level != "" {
			cfg.Trust = fc.Trust.Level
		}
		cfg.TrustPolicy = fc.Trust.Policy
		cfg.TrustText = fc.Trust.Text
	}
	base := dir
	if cfg.File != "" {
		base = filepath.Dir(cfg.File)
	}
	if t := strings.TrimSpace(cfg.TrustText); t != "" && !strings.ContainsAny(t, " \t\r\n") {
		cfg.TrustText = resolvePath(t, base, dir) // a policy file
	}
	if cfg.TrustPolicy != nil || cfg.TrustText != "" {
		cfg.Trust = TrustCustom
	}
	if fc.Whitelist != nil {
		cfg.Whitelist = *fc.Whitelist
		cfg.Whitelist.File = resolvePath(cfg.Whitelist.File, base, dir)
	}
	if fc.Blacklist != nil {
		cfg.Blacklist = *fc.Blacklist
		cfg.Blacklist.File = resolvePath(cfg.Blacklist.File, base, dir)
	}
	cfg.Port = num(fc.Port, DefaultPort)
	cfg.Workers = num(fc.Workers, DefaultWorkers)
	cfg.Queue = num(fc.Queue, max(1024, 64*cfg.Workers))
	cfg.ResultTTL = time.Duration(num(fc.ResultTTL, int(DefaultResultTTL/time.Second))) * time.Second
	cfg.RelayURL = str(fc.RelayURL, "")
	cfg.PublicURL = str(fc.PublicURL, "")
	if fc.Reload != nil {
		cfg.Reload = *fc.Reload
	}
	if fc.LegacySignatures != nil {
		cfg.LegacySignatures = *fc.LegacySignatures
	}
	if fc.AllowedOrigins != nil {
		cfg.AllowedOrigins = *fc.AllowedOrigins
	}
	cfg.MaxConnsPerIP = num(fc.MaxConnsPerIP, DefaultMaxConnsPerIP)
	cfg.UploadQuotaMB = DefaultUploadQuotaMB
	if fc.UploadQuotaMB != nil {
		cfg.UploadQuotaMB = *fc.UploadQuotaMB
	}
	cfg.CoDir = str(fc.CoDir, DefaultCoDir)
	if !filepath.IsAbs(cfg.CoDir) {
		cfg.CoDir = filepath.Join(dir, cfg.CoDir)
	}
	// The seed's files: .co/whitelist.txt and .co/blacklist.txt are read
	// when present and no list is configured.
	for _, l := range []struct {
		list *AccessList
		file string
	}{{&cfg.Whitelist, "whitelist.txt"}, {&cfg.Blacklist, "blacklist.txt"}} {
		if l.list.File == "" && len(l.list.Addresses) == 0 {
			if p := filepath.Join(cfg.CoDir, l.file); fileExists(p) {
				l.list.File = p
			}
		}
	}
	cfg.MaxFileSizeMB = DefaultMaxFileSizeMB
	if fc.MaxFileSize != nil {
		cfg.MaxFileSizeMB = *fc.MaxFileSize
	}
	cfg.MaxFilesPerRequest = num(fc.MaxFilesPerRequest, DefaultMaxFilesPerRequest)
	if fc.MCPServers != nil {
		cfg.MCPServers = map[string]mcptools.Config(*fc.MCPServers)
	}
	cfg.Model = str(fc.Model, "")
	if fc.SystemPrompt != nil {
		text, file, err := readPrompt(*fc.SystemPrompt, base, dir)
		if err != nil {
			return nil, fmt.Errorf("%w: system_prompt: %v", ErrConfig, err)
		}
		cfg.SystemPrompt, cfg.SystemPromptFile = text, file
	}
	return cfg, nil
}

// resolvePath finds a relative path next to host.yaml first, then in the
// working directory.
func resolvePath(p, base, dir string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	cand := filepath.Join(base, p)
	if _, err := os.Stat(cand); err == nil || base == dir {
		return cand
	}
	if alt := filepath.Join(dir, p); fileExists(alt) {
		return alt
	}
	return cand
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// promptExts mark a system_prompt value as a file name even before the file
// exists, so a typo is an error rather than a one-line prompt.
var promptExts = []string{".md", ".txt", ".prompt"}

// readPrompt returns the prompt text: v itself, or the contents of the
// file v names.
func readPrompt(v, base, dir string) (text, file string, err error) {
	if v == "" || strings.ContainsAny(v, "\n") || len(v) > 512 {
		return v, "", nil
	}
	p := resolvePath(v, base, dir)
	named := false
	for _, ext := range promptExts {
		named = named || strings.HasSuffix(strings.ToLower(v), ext)
	}
	if !fileExists(p) {
		if named {
			return "", "", fmt.Errorf("prompt file %s not found", p)
		}
		return v, "", nil
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return "", "", err
	}
	return string(b), p, nil
}

func clipString(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}
