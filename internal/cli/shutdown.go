package cli

import "time"

// defaultShutdownGrace is how long serve and platform wait, by default,
// for what is going on when asked to stop (--shutdown-grace). It is the
// libraries' own default; a container's stop timeout (Docker's is 10 s)
// must be longer, or the engine kills the process before it is done.
const defaultShutdownGrace = 10 * time.Second
