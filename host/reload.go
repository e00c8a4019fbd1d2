package host

import (
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Reload covers what can change without dropping connections: the agent
// (model, system prompt and its file), summary, examples, trust level,
// upload limits and result_ttl apply to runs that start after the reload,
// and a new port moves the listener (Serve only). workers, queue and co_dir
// need a restart; a reload that changes them logs so. A config that fails
// to load is logged and the running one is kept.

// Reload re-reads host.yaml and the prompt file and swaps in the result.
//
// An empty host.yaml is not loaded: a file caught between its truncation
// and its write (an editor or a shell writing in place) reads as empty, and
// loading it would move everything to the defaults, port included, until
// the write lands. The running configuration is kept and the write that
// follows reloads.
func (s *Server) Reload() error {
	old := s.current().cfg
	if p, _ := s.configPath(); p != "" {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Size() == 0 {
			s.log.Info("reload: the configuration file is empty (being written?); keeping the running configuration", "file", p)
			return nil
		}
	}
	cfg, err := s.loadConfig()
	if err != nil {
		s.log.Error("reload: keeping the running configuration", "err", err)
		return err
	}
	rt, err := s.buildRuntime(cfg)
	if err != nil {
		s.log.Error("reload: keeping the running configuration", "err", err)
		return err
	}
	if s.mcp.changed(cfg.MCPServers) {
		s.log.Warn("reload: mcp_servers changes take effect after a restart")
		cfg.MCPServers = old.MCPServers
	}
	if cfg.Workers != old.Workers || cfg.Queue != old.Queue || cfg.CoDir != old.CoDir {
		s.log.Warn("reload: workers, queue and co_dir changes take effect after a restart")
		cfg.Workers, cfg.Queue, cfg.CoDir = old.Workers, old.Queue, old.CoDir
	}
	s.rt.Store(rt)
	s.startRelay()
	s.log.Info("reloaded", "model", rt.model, "file", cfg.File)
	if cfg.Port != old.Port {
		select {
		case s.restart <- cfg.Port:
		default:
		}
	}
	return nil
}

// watched lists the files whose changes trigger a reload.
func (s *Server) watched() []string {
	cfg := s.current().cfg
	files := []string{}
	if cfg.File != "" {
		files = append(files, cfg.File)
	} else if p, err := s.configPath(); err == nil && p != "" {
		files = append(files, p)
	}
	if cfg.SystemPromptFile != "" {
		files = append(files, cfg.SystemPromptFile)
	}
	return files
}

func (s *Server) configPath() (string, error) {
	path := filepath.Join(DefaultCoDir, ConfigFileName)
	switch {
	case s.set.configPath != nil:
		path = *s.set.configPath
	case s.set.code.CoDir != nil:
		path = filepath.Join(*s.set.code.CoDir, ConfigFileName)
	}
	if path != "" && !filepath.IsAbs(path) {
		path = filepath.Join(s.set.dir, path)
	}
	return path, nil
}

// watch starts reloading on changes to the watched files. Directories are
// watched, not files, because editors replace files by renaming.
func (s *Server) watch() error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	dirs := map[string]bool{}
	add := func() {
		for _, f := range s.watched() {
			d := filepath.Dir(f)
			if !dirs[d] {
				if err := w.Add(d); err == nil {
					dirs[d] = true
				} else {
					s.log.Warn("reload: cannot watch a directory; changes to the files in it are not picked up", "dir", d, "err", err)
				}
			}
		}
	}
	add()
	s.bgWG.Add(1)
	go func() {
		defer s.bgWG.Done()
		defer w.Close()
		var timer *time.Timer
		var fire <-chan time.Time
		for {
			select {
			case <-s.bg.Done():
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if !s.isWatched(ev.Name) {
					continue
				}
				// Editors write in bursts; reload once they are done.
				if timer == nil {
					timer = time.NewTimer(150 * time.Millisecond)
				} else {
					timer.Reset(150 * time.Millisecond)
				}
				fire = timer.C
			case <-fire:
				fire = nil
				if s.Reload() == nil {
					add()
				}
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				s.log.Warn("watching config files", "err", err)
			}
		}
	}()
	return nil
}

func (s *Server) isWatched(name string) bool {
	clean := filepath.Clean(name)
	for _, f := range s.watched() {
		if filepath.Clean(f) == clean {
			return true
		}
	}
	return false
}
