package secrets

import (
	"fmt"
	"strings"
)

// Why names are reserved, as the 400 answer says.
const (
	whyLoader  = "it changes how programs load or run"
	whyShell   = "it changes what the shell runs"
	whyProgram = "it names a program that tools would run"
	whySandbox = "the sandbox sets it for every tool"
	whyProxy   = "it would route the tools' traffic around the egress policy"
	whyOurs    = "the platform sets AGENTHOST_* variables itself"
)

// reservedNames are the secret names an organisation may not use: each
// would let whoever sets it run code in every tool of every agent that
// receives it (a secret is an environment variable of the agent's tools),
// undo the sandbox's settings, or impersonate the platform's own
// configuration. Names are matched whatever their case.
var reservedNames = map[string]string{
	"PATH": whySandbox, "HOME": whySandbox, "TMPDIR": whySandbox, "SHELL": whySandbox,

	"BASH_ENV": whyShell, "ENV": whyShell, "SHELLOPTS": whyShell, "BASHOPTS": whyShell,
	"PS4": whyShell, "PROMPT_COMMAND": whyShell, "IFS": whyShell, "CDPATH": whyShell, "GLOBIGNORE": whyShell,

	"PYTHONSTARTUP": whyLoader, "PYTHONPATH": whyLoader, "PYTHONHOME": whyLoader, "PYTHONINSPECT": whyLoader,
	"PYTHONUSERBASE": whyLoader, "PYTHONBREAKPOINT": whyLoader, "PYTHONWARNINGS": whyLoader, "PYTHONEXECUTABLE": whyLoader,
	"PERL5OPT": whyLoader, "PERL5LIB": whyLoader, "PERLLIB": whyLoader, "PERL5DB": whyLoader,
	"RUBYOPT": whyLoader, "RUBYLIB": whyLoader,
	"NODE_OPTIONS": whyLoader, "NODE_PATH": whyLoader,
	"JAVA_TOOL_OPTIONS": whyLoader, "_JAVA_OPTIONS": whyLoader, "JDK_JAVA_OPTIONS": whyLoader, "CLASSPATH": whyLoader,
	"GCONV_PATH": whyLoader, "GLIBC_TUNABLES": whyLoader, "LOCPATH": whyLoader, "NLSPATH": whyLoader,
	"HOSTALIASES": whyLoader, "RESOLV_HOST_CONF": whyLoader,

	"GIT_SSH": whyProgram, "GIT_SSH_COMMAND": whyProgram, "GIT_EXEC_PATH": whyProgram, "GIT_ASKPASS": whyProgram,
	"GIT_PROXY_COMMAND": whyProgram, "GIT_EXTERNAL_DIFF": whyProgram, "GIT_PAGER": whyProgram, "GIT_EDITOR": whyProgram,
	"GIT_SEQUENCE_EDITOR": whyProgram, "GIT_TEMPLATE_DIR": whyProgram,
	"SSH_ASKPASS": whyProgram, "SSH_ASKPASS_REQUIRE": whyProgram,
	"EDITOR": whyProgram, "VISUAL": whyProgram, "PAGER": whyProgram, "MANPAGER": whyProgram,
	"LESSOPEN": whyProgram, "LESSCLOSE": whyProgram, "BROWSER": whyProgram,

	"HTTP_PROXY": whyProxy, "HTTPS_PROXY": whyProxy, "ALL_PROXY": whyProxy, "NO_PROXY": whyProxy, "FTP_PROXY": whyProxy,
}

// reservedPrefixes are families of reserved names.
var reservedPrefixes = []struct{ prefix, why string }{
	{"LD_", whyLoader},   // LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT...
	{"DYLD_", whyLoader}, // the same on macOS
	{"BASH_FUNC_", whyShell},
	{"GIT_CONFIG", whyProgram}, // GIT_CONFIG, GIT_CONFIG_GLOBAL, GIT_CONFIG_COUNT, GIT_CONFIG_KEY_0...
	{"AGENTHOST_", whyOurs},
}

// Reserved reports whether key may not name a secret, and why.
func Reserved(key string) (why string, reserved bool) {
	k := strings.ToUpper(key)
	if why, ok := reservedNames[k]; ok {
		return why, true
	}
	for _, p := range reservedPrefixes {
		if strings.HasPrefix(k, p.prefix) {
			return p.why, true
		}
	}
	return "", false
}

// checkReserved is CheckKey's answer for a reserved key.
func checkReserved(key string) error {
	if why, ok := Reserved(key); ok {
		return fmt.Errorf("%w: key %s is reserved: %s; choose another name", ErrInvalid, key, why)
	}
	return nil
}
