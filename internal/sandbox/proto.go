package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
)

// The agent loop and the sandbox's init talk over a SOCK_SEQPACKET socket
// pair, one JSON message per packet. A run message carries the command's
// output pipe as SCM_RIGHTS. The agent loop treats everything that comes
// back as hostile input: the tools run beside the init and may have taken
// it over.
const (
	opRun     = "run"     // agent → init: start Script in Dir; one fd: stdout+stderr
	opKill    = "kill"    // agent → init: SIGKILL the process group of ID
	opReady   = "ready"   // init → agent: set up, accepting commands
	opFatal   = "fatal"   // init → agent: setup failed (Error); init exits
	opStarted = "started" // init → agent: ID runs as Pid
	opExit    = "exit"    // init → agent: ID ended (Code, Signal) or never started (Error)
)

// message is one packet.
type message struct {
	Op     string   `json:"op"`
	ID     uint64   `json:"id,omitempty"`
	Script string   `json:"script,omitempty"`
	Dir    string   `json:"dir,omitempty"`
	Env    []string `json:"env,omitempty"`
	Pid    int      `json:"pid,omitempty"`
	Code   int      `json:"code,omitempty"`
	Signal int      `json:"signal,omitempty"`
	Error  string   `json:"error,omitempty"`
}

// maxPacket bounds a packet; the socket buffers are raised to hold one.
const maxPacket = 512 << 10

// MaxScript is the longest command accepted: Linux refuses a longer single
// argument (MAX_ARG_STRLEN) to bash -c anyway.
const MaxScript = 128 << 10

// errBadPacket is returned for a packet that is not a message.
var errBadPacket = errors.New("malformed packet")

// fileConn turns a socket file into a *net.UnixConn (and closes f).
func fileConn(f *os.File) (*net.UnixConn, error) {
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		return nil, err
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("%s is not a unix socket", f.Name())
	}
	return uc, nil
}

// send writes m as one packet, passing files along.
func send(c *net.UnixConn, m message, files ...*os.File) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if len(b) > maxPacket {
		return fmt.Errorf("message of %d bytes is too large", len(b))
	}
	var oob []byte
	if len(files) > 0 {
		fds := make([]int, len(files))
		for i, f := range files {
			fds[i] = int(f.Fd())
		}
		oob = syscall.UnixRights(fds...)
	}
	_, _, err = c.WriteMsgUnix(b, oob, nil)
	return err
}

// receiver reads packets with reusable buffers.
type receiver struct {
	c   *net.UnixConn
	buf []byte
	oob []byte
}

func newReceiver(c *net.UnixConn) *receiver {
	return &receiver{c: c, buf: make([]byte, maxPacket), oob: make([]byte, syscall.CmsgSpace(4*4))}
}

// recv reads one message and the files that came with it. Errors other
// than errBadPacket mean the connection is gone.
func (r *receiver) recv() (message, []*os.File, error) {
	n, oobn, flags, _, err := r.c.ReadMsgUnix(r.buf, r.oob)
	if err != nil {
		return message{}, nil, err
	}
	files := parseRights(r.oob[:oobn])
	if n == 0 && oobn == 0 {
		return message{}, nil, net.ErrClosed // the peer closed: a zero-length packet is EOF
	}
	var m message
	if flags&(syscall.MSG_TRUNC|syscall.MSG_CTRUNC) != 0 || json.Unmarshal(r.buf[:n], &m) != nil {
		closeAll(files)
		return message{}, nil, errBadPacket
	}
	return m, files, nil
}

func parseRights(oob []byte) []*os.File {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	var files []*os.File
	for _, cm := range msgs {
		fds, err := syscall.ParseUnixRights(&cm)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			syscall.CloseOnExec(fd)
			files = append(files, os.NewFile(uintptr(fd), "received"))
		}
	}
	return files
}

func closeAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}
