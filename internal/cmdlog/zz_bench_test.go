package cmdlog
import "testing"
func BenchmarkFinish(b *testing.B) {
	s := Open(b.TempDir(), Options{})
	t := &testing.T{}
	for i := 0; i < b.N; i++ { finish(t, s, "o", "e") }
}
func benchmarkGet(b *testing.B) {
	s := Open(b.TempDir(), Options{})
	t := &testing.T{}
	for i := 0; i < 1000; i++ { finish(t, s, "o", "e") }
	b.ResetTimer()
	for i := 0; i < b.N; i++ { s.Get("cmd-000500") }
}
