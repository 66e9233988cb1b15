package wire

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// Bodies of many sizes go up intact, answers of many sizes (some with big
// heads, so that the core reads them through bigFramePool) come down intact,
// over reused connections, with a handler that reads slowly.
func TestDirectIntegrity(t *testing.T) {
	eachOf(t, directTransports, testIntegrity)
}

func testIntegrity(t *testing.T, transport string) {
	core := bridge(t, transport, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		buf := make([]byte, 1+rand.Intn(70000))
		for {
			n, err := r.Body.Read(buf)
			h.Write(buf[:n])
			if rand.Intn(50) == 0 {
				time.Sleep(time.Millisecond)
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
		}
		var size int
		fmt.Sscan(r.URL.Query().Get("resp"), &size)
		if r.URL.Query().Get("bighead") != "" {
			w.Header().Set("X-Big", strings.Repeat("h", 6000))
		}
		w.Header().Set("X-Sum", hex.EncodeToString(h.Sum(nil)))
		seed := byte(size)
		out := make([]byte, size)
		for i := range out {
			out[i] = seed + byte(i*7)
		}
		for len(out) > 0 {
			n := min(len(out), 1+rand.Intn(90000))
			w.Write(out[:n])
			out = out[n:]
			if rand.Intn(3) == 0 {
				w.(http.Flusher).Flush()
			}
		}
	}))
	sizes := []int{0, 1, 8191, 8192, ChunkSize - 1, ChunkSize, ChunkSize + 1, ChunkSize + bigChunkSize, 3 << 20, 700000}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			rnd := rand.New(rand.NewSource(int64(g)))
			for i := 0; i < 40; i++ {
				bs := sizes[rnd.Intn(len(sizes))]
				rs := sizes[rnd.Intn(len(sizes))]
				body := make([]byte, bs)
				rnd.Read(body)
				sum := sha256.Sum256(body)
				url := fmt.Sprintf("%s/x?resp=%d", core.URL, rs)
				if rnd.Intn(2) == 0 {
					url += "&bighead=1"
				}
				var rdr io.Reader = bytes.NewReader(body)
				if rnd.Intn(2) == 0 {
					rdr = io.MultiReader(rdr) // unknown length: chunked
				}
				resp, err := http.Post(url, "application/octet-stream", rdr)
				if err != nil {
					t.Error(err)
					return
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK {
					t.Error(resp.StatusCode, err)
					return
				}
				if resp.Header.Get("X-Sum") != hex.EncodeToString(sum[:]) {
					t.Errorf("body %d: sum mismatch", bs)
				}
				if len(got) != rs {
					t.Errorf("resp %d: got %d", rs, len(got))
					continue
				}
				seed := byte(rs)
				for j := range got {
					if got[j] != seed+byte(j*7) {
						t.Errorf("resp %d: byte %d differs", rs, j)
						break
					}
				}
			}
		}(g)
	}
	wg.Wait()
}
