package schema

import (
	"testing"
	"time"
)

func TestTimeIt(t *testing.T) {
	data := genPolicy(200000)
	for range 5 {
		s := time.Now()
		_, _ = scan(data)
		t1 := time.Since(s)
		s = time.Now()
		Validate(RuntimePolicy, data, Options{})
		t.Logf("scan %v validate %v", t1, time.Since(s))
	}
}
