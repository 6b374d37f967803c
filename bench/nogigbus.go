//go:build nogigbus

package bench

// gigbusImpls is empty under the nogigbus tag, which runs the peers alone
// (for when the eventbus package does not build).
func gigbusImpls() []Impl { return nil }
