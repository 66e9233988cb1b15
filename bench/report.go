package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"text/tabwriter"
)

// figure is one line of the table: a measure taken on each contender, the
// ratio that the target is about, and whether it is met.
type figure struct {
	ID   string `json:"id"`
	What string `json:"what"`
	Unit string `json:"unit"`
	// Chacc is the core and module; InProc the same handler in-process;
	// Micro the handler as a plain HTTP server behind httputil.ReverseProxy.
	// Each is the median of Rounds.
	Chacc  *float64 `json:"chacc,omitempty"`
	InProc *float64 `json:"inproc,omitempty"`
	Micro  *float64 `json:"micro,omitempty"`
	// Others are the medians of the extra contenders of (a), (b) and (d), by
	// key (see extraContenders).
	Others map[string]float64 `json:"others,omitempty"`
	// Rounds holds every round's value per contender, in run order.
	Rounds map[string][]float64 `json:"rounds,omitempty"`
	// Ratio is what Target is about (see RatioOf), taken of the medians.
	Ratio   *float64 `json:"ratio,omitempty"`
	RatioOf string   `json:"ratio_of,omitempty"`
	Target  string   `json:"target,omitempty"`
	Met     *bool    `json:"met,omitempty"`
	// ByRound is the same result taken round by round, each round's chacc
	// against the same round's in-process server: how far the rounds
	// spread around Ratio.
	ByRound []float64 `json:"by_round,omitempty"`
	Note    string    `json:"note,omitempty"`
}

func ptr[T any](v T) *T { return &v }

// compared sets the figure's result, of the medians, with of (ratio or
// diff) and sets ByRound with the same of, round by round, chacc against
// in-process.
func (f *figure) compared(of func(a, b *float64) *float64, ratioOf string) {
	f.Ratio, f.RatioOf = of(f.Chacc, f.InProc), ratioOf
	c, in := f.Rounds["chacc"], f.Rounds["inproc"]
	if len(c) != len(in) {
		return
	}
	for i := range c {
		if v := of(&c[i], &in[i]); v != nil {
			f.ByRound = append(f.ByRound, *v)
		}
	}
}

// results is bench/results.json.
type results struct {
	Machine  machine  `json:"machine"`
	Started  string   `json:"started"`
	Seconds  float64  `json:"seconds"`
	Quick    bool     `json:"quick"`
	Settings settings `json:"settings"`
	Figures  []figure `json:"figures"`
	Notes    []string `json:"notes,omitempty"`
}

type settings struct {
	Rounds         int     `json:"rounds"`
	WarmupSeconds  float64 `json:"warmup_seconds"`
	MeasureSeconds float64 `json:"measure_seconds"`
	Connections    int     `json:"connections"`
	OpenLoopRate   int     `json:"open_loop_rate"`
	ExecutableMB   float64 `json:"module_executable_mb"`
	ArchiveMB      float64 `json:"module_archive_mb"`
}

type machine struct {
	CPU    string `json:"cpu"`
	Cores  int    `json:"cores"`
	MemMB  int64  `json:"mem_mb"`
	Kernel string `json:"kernel"`
	Go     string `json:"go"`
}

func writeJSON(path string, r *results) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// printTable writes the figures as one aligned table.
func printTable(w io.Writer, r *results) {
	fmt.Fprintf(w, "chacc bench — %s, %d cores, %s, %s; %d rounds of %.3gs (median)\n\n",
		r.Machine.CPU, r.Machine.Cores, r.Machine.Go, r.Started, r.Settings.Rounds, r.Settings.MeasureSeconds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight|tabwriter.Debug)
	fmt.Fprintln(tw, "\tfig\twhat\tunit\tchacc\tin-process\tmicroservice\tresult\tresult is\ttarget\tmet\t")
	for _, f := range r.Figures {
		met := ""
		if f.Met != nil {
			met = map[bool]string{true: "yes", false: "NO"}[*f.Met]
		}
		ratio := ""
		if f.Ratio != nil {
			ratio = num(*f.Ratio)
		}
		fmt.Fprintf(tw, "\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", f.ID, f.What, f.Unit,
			opt(f.Chacc), opt(f.InProc), opt(f.Micro), ratio, f.RatioOf, f.Target, met)
	}
	tw.Flush()
	for _, f := range r.Figures {
		if len(f.ByRound) > 0 {
			rounds := make([]string, len(f.ByRound))
			for i, v := range f.ByRound {
				rounds[i] = num(v)
			}
			fmt.Fprintf(w, "  %s %s: %s, round by round: %s\n", f.ID, f.What, f.RatioOf, strings.Join(rounds, ", "))
		}
		if f.Note != "" {
			fmt.Fprintf(w, "  %s %s: %s\n", f.ID, f.What, f.Note)
		}
		for _, x := range extraContenders {
			v, ok := f.Others[x.key]
			if !ok || f.InProc == nil {
				continue
			}
			rel := fmt.Sprintf("%s of in-process", num(v / *f.InProc))
			if f.Unit == "ms" {
				rel = fmt.Sprintf("%s ms added", num(v-*f.InProc))
			}
			fmt.Fprintf(w, "  %s %s: %s: %s %s (%s)\n", f.ID, f.What, x.what, num(v), f.Unit, rel)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintln(w, "  note: "+n)
	}
}

func opt(v *float64) string {
	if v == nil {
		return "-"
	}
	return num(*v)
}

// num prints three significant digits, without exponent for large values.
func num(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1000:
		return strings.TrimSuffix(fmt.Sprintf("%.0f", v), ".")
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}
