package host

// CheckA2AKeys exposes checkA2AKeys to the fuzz target.
var CheckA2AKeys = checkA2AKeys
