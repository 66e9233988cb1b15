package archive

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"sync"
)

// ConcurrentSHA256 is a SHA-256 computed on a goroutine of its own: Write
// copies p into one of a few buffers and returns, so that the writer's
// reading and writing (an upload arriving, an executable extracted) run
// beside the hashing when a CPU is free, rather than one after the other.
// Call Sum once everything is written, or Close to give up; the zero value
// is not usable: see [NewConcurrentSHA256].
type ConcurrentSHA256 struct {
	work  chan *[]byte // filled buffers, to hash in order
	free  chan *[]byte // hashed buffers, to fill again
	done  chan struct{}
	h     hash.Hash
	taken int // buffers taken from bufs
	once  sync.Once
}

// hashBuffers is how many buffers a ConcurrentSHA256 fills ahead of the
// hashing; bufs holds them between uses.
const hashBuffers = 4

// bufs holds the package's 256 KiB buffers: inflate's and the hashing's.
// inflate reads a 25 MB executable in 100 pieces rather than 800, and no
// install allocates its own.
var bufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// NewConcurrentSHA256 starts the hashing goroutine.
func NewConcurrentSHA256() *ConcurrentSHA256 {
	c := &ConcurrentSHA256{
		work: make(chan *[]byte, hashBuffers), free: make(chan *[]byte, hashBuffers),
		done: make(chan struct{}), h: sha256.New(),
	}
	go func() {
		defer close(c.done)
		for b := range c.work {
			c.h.Write(*b)
			c.free <- b
		}
	}()
	return c
}

// Write hands a copy of p to the hashing goroutine. It never fails.
func (c *ConcurrentSHA256) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		var b *[]byte
		if c.taken < hashBuffers {
			select {
			case b = <-c.free:
			default:
				b = bufs.Get().(*[]byte)
				c.taken++
			}
		} else {
			b = <-c.free
		}
		k := copy((*b)[:cap(*b)], p)
		*b = (*b)[:k]
		c.work <- b
		p = p[k:]
	}
	return n, nil
}

// Sum waits for the hashing to finish and returns the digest, hex-encoded.
// No Write may follow.
func (c *ConcurrentSHA256) Sum() string {
	c.Close()
	return hex.EncodeToString(c.h.Sum(nil))
}

// Close stops the hashing goroutine once it has hashed what was written,
// and returns the buffers. It may be called more than once, and after Sum.
func (c *ConcurrentSHA256) Close() {
	c.once.Do(func() {
		close(c.work)
		<-c.done
		for range c.taken {
			bufs.Put(<-c.free)
		}
	})
}
