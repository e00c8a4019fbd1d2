package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// box is one running sandbox.
type box struct {
	m       *Manager
	session string

	ready    chan struct{} // closed when started or failed to start
	startErr error

	cmd    *exec.Cmd
	conn   *net.UnixConn
	stderr *capBuf
	exited chan struct{} // closed when bwrap has been waited for
	sendMu sync.Mutex

	mu       sync.Mutex
	pending  map[uint64]chan message
	nextID   uint64
	running  int
	lastUsed time.Time
	retired  bool // closed on purpose (idle, session or manager closed)

	dieOnce sync.Once
	dead    chan struct{} // closed when the sandbox is gone
}

func newBox(m *Manager, session string) *box {
	return &box{m: m, session: session, ready: make(chan struct{}), exited: make(chan struct{}),
		dead: make(chan struct{}), pending: map[uint64]chan message{}, stderr: &capBuf{limit: 8 << 10},
		lastUsed: m.cfg.Now()}
}

// start launches bwrap and waits until the init is ready.
func (b *box) start(ctx context.Context) (err error) {
	defer func() {
		b.startErr = err
		close(b.ready)
	}()
	parent, child, err := socketPair()
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	files := []*os.File{child}
	defer func() { closeAll(files) }()
	for _, content := range []string{passwdFile, groupFile, hostsFile} {
		r, w, err := os.Pipe()
		if err != nil {
			parent.Close()
			return fmt.Errorf("sandbox: %w", err)
		}
		_, err = io.WriteString(w, content)
		w.Close()
		files = append(files, r)
		if err != nil {
			parent.Close()
			return fmt.Errorf("sandbox: %w", err)
		}
	}
	own, err := b.m.privateDir(b.session)
	if err != nil {
		parent.Close()
		return err
	}
	cmd := exec.Command(b.m.bwrap, b.m.bwrapArgs([3]int{4, 5, 6}, b.session, own)...)
	cmd.ExtraFiles = files
	cmd.Env = b.m.env
	cmd.Stdout, cmd.Stderr = b.stderr, b.stderr
	// Its own process group: a ^C meant for the runtime is not for it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		parent.Close()
		return fmt.Errorf("sandbox: starting bwrap: %w", err)
	}
	b.cmd = cmd
	go func() {
		_ = cmd.Wait()
		close(b.exited)
	}()
	conn, err := fileConn(parent)
	if err != nil {
		b.die(err)
		return fmt.Errorf("sandbox: %w", err)
	}
	b.conn = conn
	readyc := make(chan error, 1)
	go b.read(readyc)
	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	select {
	case err = <-readyc:
	case <-ctx.Done():
		err = context.Cause(ctx)
	case <-timer.C:
		err = fmt.Errorf("the init was not ready after %s", startTimeout)
	}
	if err != nil {
		b.closeNow()
		if msg := bytes.TrimSpace(b.stderr.Bytes()); len(msg) > 0 {
			err = fmt.Errorf("%w; bwrap said: %s", err, msg)
		}
		return fmt.Errorf("sandbox: starting: %w", err)
	}
	b.m.log.Debug("sandbox started", "session", b.session, "pid", cmd.Process.Pid)
	return nil
}

// read delivers the init's messages until the connection ends; the first
// must be ready (or fatal), reported on readyc.
func (b *box) read(readyc chan<- error) {
	r := newReceiver(b.conn)
	ready := false
	var cause error
	for {
		msg, files, err := r.recv()
		closeAll(files) // the init has no business sending descriptors
		if errors.Is(err, errBadPacket) {
			continue
		}
		if err != nil {
			cause = err
			break
		}
		if !ready {
			switch msg.Op {
			case opReady:
				ready = true
				readyc <- nil
			case opFatal:
				cause = fmt.Errorf("the init failed: %s", msg.Error)
			default:
				cause = fmt.Errorf("unexpected %q before ready", msg.Op)
			}
			if cause != nil {
				break
			}
			continue
		}
		if msg.Op != opStarted && msg.Op != opExit {
			continue
		}
		b.mu.Lock()
		ch := b.pending[msg.ID]
		b.mu.Unlock()
		if ch != nil {
			select {
			case ch <- msg:
			default: // a flood of forged messages: drop
			}
		}
	}
	if !ready {
		if cause == nil || errors.Is(cause, net.ErrClosed) || errors.Is(cause, io.EOF) {
			cause = errors.New("bwrap exited before the init was ready")
		}
		readyc <- cause
	}
	b.die(cause)
}

// die makes sure bwrap and everything in the sandbox are gone, then marks
// the box dead.
func (b *box) die(cause error) {
	b.dieOnce.Do(func() {
		if b.cmd != nil && b.cmd.Process != nil {
			// bwrap's --die-with-parent takes the sandbox down with it.
			_ = b.cmd.Process.Kill()
			select {
			case <-b.exited:
			case <-time.After(killWait):
				b.m.log.Warn("bwrap did not exit after SIGKILL", "session", b.session, "pid", b.cmd.Process.Pid)
			}
		}
		if b.conn != nil {
			b.conn.Close()
		}
		if !b.isRetired() {
			b.m.log.Warn("sandbox ended", "session", b.session, "cause", cause, "stderr", string(bytes.TrimSpace(b.stderr.Bytes())))
		}
		close(b.dead)
	})
}

// close ends the sandbox on purpose and waits until it is gone.
func (b *box) close() {
	<-b.ready
	b.closeNow()
}

// closeNow is close for a box that is not starting elsewhere.
func (b *box) closeNow() {
	b.mu.Lock()
	b.retired = true
	b.mu.Unlock()
	if b.conn != nil {
		b.conn.Close() // the init sees EOF, kills its commands and exits
	}
	b.die(errors.New("closed"))
}

func (b *box) isDead() bool {
	select {
	case <-b.dead:
		return true
	default:
		return false
	}
}

func (b *box) isRetired() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.retired
}

// unexpected reports whether a dead box died by itself.
func (b *box) unexpected() bool { return b.isDead() && !b.isRetired() }

// register reserves an id for a command; false when the box is being
// retired.
func (b *box) register(now time.Time) (uint64, chan message, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.retired {
		return 0, nil, false
	}
	b.nextID++
	ch := make(chan message, 4)
	b.pending[b.nextID] = ch
	b.running++
	b.lastUsed = now
	return b.nextID, ch, true
}

func (b *box) unregister(id uint64, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.pending, id)
	b.running--
	b.lastUsed = now
}

// retireIfIdle marks the box retired when no command runs and none has
// for at least idle; the caller then closes it.
func (b *box) retireIfIdle(now time.Time, idle time.Duration) bool {
	select {
	case <-b.ready:
	default:
		return false // still starting
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.retired || b.running > 0 || now.Sub(b.lastUsed) < idle {
		return false
	}
	b.retired = true
	return true
}

func (b *box) send(m message, files ...*os.File) error {
	b.sendMu.Lock()
	defer b.sendMu.Unlock()
	return send(b.conn, m, files...)
}

// run sends the command and waits for its end and its output.
func (b *box) run(ctx context.Context, id uint64, ch chan message, c Command) (Result, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return Result{}, fmt.Errorf("sandbox: %w", err)
	}
	err = b.send(message{Op: opRun, ID: id, Script: c.Script, Dir: c.Dir, Env: c.Env}, pw)
	pw.Close()
	if err != nil {
		pr.Close()
		b.die(err)
		return Result{}, fmt.Errorf("sandbox: sending the command: %w", ErrDied)
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = io.Copy(c.Output, pr)
	}()
	var res Result
	var runErr error
	done := ctx.Done()
	var killTimer <-chan time.Time
wait:
	for {
		select {
		case msg := <-ch:
			if msg.Op != opExit {
				continue
			}
			if msg.Error != "" {
				runErr = fmt.Errorf("starting the command: %s", msg.Error)
			}
			res.Code, res.Signal = msg.Code, syscall.Signal(msg.Signal)
			break wait
		case <-done:
			done = nil
			if err := b.send(message{Op: opKill, ID: id}); err != nil {
				b.die(err)
			}
			t := time.NewTimer(killWait)
			defer t.Stop()
			killTimer = t.C
		case <-killTimer:
			// The init did not report the kill: it is gone or not ours.
			b.m.log.Warn("a killed command was not reported; killing its sandbox", "session", b.session)
			b.die(errors.New("kill not acknowledged"))
		case <-b.dead:
			runErr = ErrDied
			break wait
		}
	}
	t := time.NewTimer(pipeGrace)
	select {
	case <-copied:
	case <-t.C:
		_ = pr.SetReadDeadline(time.Now())
		<-copied
		res.OutputHeld = true
	}
	t.Stop()
	pr.Close()
	return res, runErr
}

// capBuf keeps the first limit bytes written to it.
type capBuf struct {
	mu    sync.Mutex
	limit int
	b     bytes.Buffer
}

func (c *capBuf) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := c.limit - c.b.Len(); room > 0 {
		c.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func (c *capBuf) Bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.b.Bytes())
}
