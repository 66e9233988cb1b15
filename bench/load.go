package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// closedLoop keeps conns connections busy with GET requests for warmup then
// measure, each connection sending its next request as soon as the previous
// answer is read, and returns the requests per second completed during
// measure. paths are used in turn. A non-200 answer is an error.
//
// The client is deliberately lean (one goroutine per connection writing a
// prepared request and parsing the answer with net/http's reader): it shares
// the machine with the servers, and the less it takes the more the figures
// tell about the servers.
func closedLoop(base string, paths []string, conns int, warmup, measure time.Duration) (float64, error) {
	return closedLoopWith(base, paths, "", conns, warmup, measure)
}

// closedLoopWith is closedLoop with extra header lines ("Name: value\r\n"...)
// on every request.
func closedLoopWith(base string, paths []string, header string, conns int, warmup, measure time.Duration) (float64, error) {
	u, err := url.Parse(base)
	if err != nil {
		return 0, err
	}
	reqs := make([][]byte, len(paths))
	for i, p := range paths {
		reqs[i] = []byte("GET " + p + " HTTP/1.1\r\nHost: " + u.Host + "\r\nUser-Agent: chacc-bench\r\n" + header + "\r\n")
	}
	var (
		done     atomic.Int64
		stop     atomic.Bool
		firstErr atomic.Pointer[error]
		wg       sync.WaitGroup
	)
	for w := range conns {
		c, err := net.Dial("tcp", u.Host)
		if err != nil {
			return 0, err
		}
		wg.Add(1)
		go func(c net.Conn, w int) {
			defer wg.Done()
			defer c.Close()
			br := bufio.NewReaderSize(c, 16<<10)
			for i := w; !stop.Load(); i++ {
				if _, err := c.Write(reqs[i%len(reqs)]); err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
				resp, err := http.ReadResponse(br, nil)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("GET %s: status %d", paths[i%len(paths)], resp.StatusCode)
					}
				}
				if err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
				done.Add(1)
			}
		}(c, w)
	}
	time.Sleep(warmup)
	n0, t0 := done.Load(), time.Now()
	time.Sleep(measure)
	n1, t1 := done.Load(), time.Now()
	stop.Store(true)
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		return 0, *p
	}
	return float64(n1-n0) / t1.Sub(t0).Seconds(), nil
}

// latencies are the percentiles of one open-loop run, in milliseconds.
type latencies struct {
	P50, P99 float64
}

// openLoop sends GET requests at a constant rate for warmup then measure
// (vegeta: requests leave on schedule whatever the answers do, and latency
// counts from the scheduled time) and returns the percentiles of measure.
func openLoop(base string, paths []string, rate int, warmup, measure time.Duration) (latencies, error) {
	attacker := vegeta.NewAttacker(vegeta.KeepAlive(true), vegeta.Connections(64), vegeta.Workers(16),
		vegeta.MaxWorkers(256), vegeta.Timeout(10*time.Second))
	targets := make([]vegeta.Target, len(paths))
	for i, p := range paths {
		targets[i] = vegeta.Target{Method: http.MethodGet, URL: base + p}
	}
	pacer := vegeta.ConstantPacer{Freq: rate, Per: time.Second}
	var lat []time.Duration
	var errs int
	var firstErr string
	start := time.Now()
	for res := range attacker.Attack(vegeta.NewStaticTargeter(targets...), pacer, warmup+measure, "bench") {
		if res.Timestamp.Sub(start) < warmup {
			continue
		}
		if res.Code != http.StatusOK {
			errs++
			if firstErr == "" {
				firstErr = fmt.Sprintf("status %d %s", res.Code, res.Error)
			}
			continue
		}
		lat = append(lat, res.Latency)
	}
	if errs > 0 {
		return latencies{}, fmt.Errorf("%d failed requests, first: %s", errs, firstErr)
	}
	if len(lat) == 0 {
		return latencies{}, fmt.Errorf("no requests")
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return ms(lat[min(len(lat)-1, int(p*float64(len(lat))))]) }
	return latencies{P50: pct(0.50), P99: pct(0.99)}, nil
}

// postTime sends n POSTs of body to url one after another over one
// connection and returns the median time to the last byte of the answer, in
// milliseconds, checking that the answer echoes the body.
func postTime(client *http.Client, target string, body []byte, n int) (float64, error) {
	var times []time.Duration
	buf := bytes.NewBuffer(make([]byte, 0, len(body)+4096))
	for range n {
		t0 := time.Now()
		resp, err := client.Post(target, "application/octet-stream", bytes.NewReader(body))
		if err != nil {
			return 0, err
		}
		buf.Reset()
		_, err = io.Copy(buf, resp.Body)
		resp.Body.Close()
		d := time.Since(t0)
		if err != nil {
			return 0, err
		}
		if resp.StatusCode != http.StatusOK || !bytes.Equal(buf.Bytes(), body) {
			return 0, fmt.Errorf("POST %s: status %d, %d bytes back of %d", target, resp.StatusCode, buf.Len(), len(body))
		}
		times = append(times, d)
	}
	return median(durationsMS(times)), nil
}

// sseTimes opens n server-sent event streams of events each, interval
// apart, one after another, and returns the median time to the first event
// and the median latency of an event (from the module's send time, which
// each event carries, to its arrival here; both on this machine's clock),
// in milliseconds.
func sseTimes(client *http.Client, base string, events, intervalMS, n int) (first, perEvent float64, err error) {
	var firsts, lats []float64
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/hello/sse?n=%d&interval_ms=%d&stamp=true", base, events, intervalMS), nil)
		t0 := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			cancel()
			return 0, 0, err
		}
		br := bufio.NewReader(resp.Body)
		got := 0
		for got < events {
			line, err := br.ReadSlice('\n')
			if err != nil {
				resp.Body.Close()
				cancel()
				return 0, 0, fmt.Errorf("SSE at %s: after %d events: %w", base, got, err)
			}
			now := time.Now()
			if rest, ok := bytes.CutPrefix(line, []byte("data: ")); ok {
				var ev struct {
					SentUnixNS int64 `json:"sent_unix_ns"`
				}
				if err := json.Unmarshal(rest, &ev); err != nil || ev.SentUnixNS == 0 {
					resp.Body.Close()
					cancel()
					return 0, 0, fmt.Errorf("SSE at %s: event without send time: %q", base, line)
				}
				got++
				if got == 1 {
					firsts = append(firsts, ms(now.Sub(t0)))
				}
				lats = append(lats, ms(now.Sub(time.Unix(0, ev.SentUnixNS))))
			}
		}
		resp.Body.Close()
		cancel()
	}
	return median(firsts), median(lats), nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func durationsMS(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = ms(d)
	}
	return out
}

// median of xs (the mean of the two middle values when even).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// loadMain runs closedLoop from the command line: URL SECONDS [PATH...].
func loadMain(args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("usage: bench load URL SECONDS [PATH...]")
	}
	measure, paths, err := measureAndPaths(args[1], args[2:])
	if err != nil {
		return err
	}
	rps, err := closedLoop(args[0], paths, 64, 500*time.Millisecond, measure)
	if err != nil {
		return err
	}
	fmt.Printf("%.0f req/s\n", rps)
	return nil
}

// openMain is "bench open URL RATE SECONDS [PATH...]": the open loop of (d)
// alone, to profile a server under it; it prints p50 and p99 in ms.
func openMain(args []string) error {
	if len(args) < 3 {
		return fmt.Errorf("usage: bench open URL RATE SECONDS [PATH...]")
	}
	rate, err := strconv.Atoi(args[1])
	if err != nil || rate <= 0 {
		return fmt.Errorf("RATE %q is not a positive number of requests per second", args[1])
	}
	measure, paths, err := measureAndPaths(args[2], args[3:])
	if err != nil {
		return err
	}
	l, err := openLoop(args[0], paths, rate, time.Second, measure)
	if err != nil {
		return err
	}
	fmt.Printf("p50 %.3f ms  p99 %.3f ms\n", l.P50, l.P99)
	return nil
}

// measureAndPaths reads the command line's SECONDS and PATHs, the paths
// /hello/ping when there are none.
func measureAndPaths(secs string, paths []string) (time.Duration, []string, error) {
	s, err := strconv.ParseFloat(secs, 64)
	if err != nil {
		return 0, nil, err
	}
	if len(paths) == 0 {
		paths = []string{"/hello/ping"}
	}
	return time.Duration(s * float64(time.Second)), paths, nil
}
