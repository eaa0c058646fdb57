package render

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/mailchaos/mailchaos/history"
)

// Chart is one rendered chart: an inline <svg> element (no XML prolog) and
// a caption.
type Chart struct {
	ID      string // stable anchor, e.g. "throughput"
	Title   string
	Caption string
	SVG     string
}

// chartWidth and chartHeight are the SVG's nominal size; the page scales it.
const (
	chartWidth  = 9 * vg.Inch
	chartHeight = 2.9 * vg.Inch
)

var (
	sans         = font.Font{Typeface: "Liberation", Variant: "Sans"}
	faultFill    = color.NRGBA{R: 0xff, G: 0x98, B: 0x00, A: 0x40}
	faultText    = color.NRGBA{R: 0xb3, G: 0x5c, B: 0x00, A: 0xff}
	protoColors  = []color.Color{color.NRGBA{0x1f, 0x77, 0xb4, 0xff}, color.NRGBA{0x2c, 0xa0, 0x2c, 0xff}, color.NRGBA{0x94, 0x67, 0xbd, 0xff}, color.NRGBA{0x8c, 0x56, 0x4b, 0xff}, color.NRGBA{0x17, 0xbe, 0xcf, 0xff}, color.NRGBA{0x7f, 0x7f, 0x7f, 0xff}}
	failRed      = color.NRGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
	rawPink      = color.NRGBA{R: 0xf4, G: 0xa5, B: 0xa5, A: 0xff}
	barFaultFill = color.NRGBA{R: 0xff, G: 0x98, B: 0x00, A: 0xc0}
)

// WindowRow is one row of the downtime chart: a label and its intervals.
type WindowRow struct {
	Label     string
	Intervals []Interval
	Color     color.Color
}

// ChartInput is what the charts are drawn from.
type ChartInput struct {
	Stats  *Stats
	Faults []FaultSpan // shaded on every time chart
	// Downtime rows, top to bottom; the renderer fills them from the
	// verdict's windows, or from Stats.FailedOps without a verdict.
	Downtime []WindowRow
	// DeliveryNote is appended to the delivery chart's caption.
	DeliveryNote string
}

// Charts draws the five charts of a scenario: throughput, errors and
// latency over time with fault intervals shaded, the delivery-latency
// distribution and the downtime windows.
func Charts(in ChartInput) ([]Chart, error) {
	type fn func(ChartInput) (Chart, error)
	var out []Chart
	for _, f := range []fn{throughputChart, errorsChart, latencyChart, deliveryChart, downtimeChart} {
		c, err := f(in)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func newPlot(title, xl, yl string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xl
	p.Y.Label.Text = yl
	p.Title.TextStyle.Font = font.From(sans, 12)
	p.X.Label.TextStyle.Font = font.From(sans, 10)
	p.Y.Label.TextStyle.Font = font.From(sans, 10)
	p.X.Tick.Label.Font = font.From(sans, 9)
	p.Y.Tick.Label.Font = font.From(sans, 9)
	p.Legend.TextStyle.Font = font.From(sans, 9)
	p.Legend.Top = true
	p.Legend.Left = false
	p.Add(plotter.NewGrid())
	return p
}

// svgOf renders p to an inline <svg> element.
func svgOf(p *plot.Plot) (string, error) {
	c := vgsvg.New(chartWidth, chartHeight)
	p.Draw(draw.New(c))
	var buf bytes.Buffer
	if _, err := c.WriteTo(&buf); err != nil {
		return "", fmt.Errorf("render chart %q: %w", p.Title.Text, err)
	}
	s := buf.String()
	i := strings.Index(s, "<svg")
	if i < 0 {
		return "", fmt.Errorf("render chart %q: no <svg> element", p.Title.Text)
	}
	// role and aria-label make the chart's title available to a reader
	// that cannot see it.
	s = `<svg role="img" aria-label="` + htmlAttr(p.Title.Text) + `"` + strings.TrimPrefix(s[i:], "<svg")
	return s, nil
}

func htmlAttr(s string) string {
	r := strings.NewReplacer(`&`, "&amp;", `"`, "&quot;", `<`, "&lt;", `>`, "&gt;")
	return r.Replace(s)
}

func secs(o history.Offset) float64 { return time.Duration(o).Seconds() }

// timeAxis fixes the x range of a time chart to the whole run.
func timeAxis(p *plot.Plot, s *Stats) {
	p.X.Min = 0
	p.X.Max = math.Max(secs(s.End), 1)
	p.X.Tick.Marker = plainTicks{}
}

// plainTicks are the default ticks labelled without trailing zeros
// ("25", not "25.00").
type plainTicks struct{}

// Ticks implements plot.Ticker.
func (plainTicks) Ticks(min, max float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(min, max)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = strconv.FormatFloat(ts[i].Value, 'g', 6, 64)
		}
	}
	return ts
}

// faultShade shades fault intervals over the full height of a time chart
// and labels them F1, F2, ... to match the fault timeline table.
type faultShade struct{ faults []FaultSpan }

// Plot implements plot.Plotter.
func (f faultShade) Plot(c draw.Canvas, p *plot.Plot) {
	trX, _ := p.Transforms(&c)
	sty := text.Style{Color: faultText, Font: font.From(sans, 8), Handler: p.Title.TextStyle.Handler, XAlign: draw.XLeft, YAlign: draw.YTop}
	for i, fs := range f.faults {
		x0, x1 := trX(secs(fs.Start)), trX(secs(fs.End))
		x0, x1 = max(x0, c.Min.X), min(x1, c.Max.X)
		if x1 < x0 {
			continue
		}
		if x1-x0 < 1.5 {
			x1 = x0 + 1.5
		}
		c.FillPolygon(faultFill, []vg.Point{{X: x0, Y: c.Min.Y}, {X: x1, Y: c.Min.Y}, {X: x1, Y: c.Max.Y}, {X: x0, Y: c.Max.Y}})
		c.FillText(sty, vg.Point{X: x0 + 2, Y: c.Max.Y - 2}, fmt.Sprintf("F%d", i+1))
	}
}

// bucketXYs returns one point per bucket (at its middle) of v(bucket).
func bucketXYs(s *Stats, pi int, v func(*protoBucket) (float64, bool)) plotter.XYs {
	var xys plotter.XYs
	w := s.Width.Seconds()
	for i := range s.buckets {
		y, ok := v(&s.buckets[i][pi])
		if !ok {
			continue
		}
		xys = append(xys, plotter.XY{X: (float64(i) + 0.5) * w, Y: y})
	}
	return xys
}

func addLine(p *plot.Plot, xys plotter.XYs, clr color.Color, dashed bool, legend string) error {
	if len(xys) == 0 {
		return nil
	}
	l, err := plotter.NewLine(xys)
	if err != nil {
		return err
	}
	l.Color = clr
	l.Width = vg.Points(1.3)
	if dashed {
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
	}
	p.Add(l)
	if legend != "" {
		p.Legend.Add(legend, l)
	}
	return nil
}

// noData marks an empty chart so nobody mistakes it for a flat line.
func noData(p *plot.Plot, what string) {
	p.Title.Text += " — no " + what + " in the history"
	p.Y.Min, p.Y.Max = 0, 1
}

func throughputChart(in ChartInput) (Chart, error) {
	s := in.Stats
	p := newPlot("Throughput (successful operations per second)", "time since start (s)", "ops/s")
	timeAxis(p, s)
	p.Add(faultShade{in.Faults})
	w := s.Width.Seconds()
	any := false
	for pi, proto := range s.Protocols {
		xys := bucketXYs(s, pi, func(b *protoBucket) (float64, bool) { return float64(b.OpsOK) / w, true })
		any = any || len(xys) > 0
		if err := addLine(p, xys, protoColors[pi%len(protoColors)], false, proto); err != nil {
			return Chart{}, err
		}
	}
	if !any {
		noData(p, "operations")
	}
	p.Y.Min = 0
	svg, err := svgOf(p)
	return Chart{ID: "throughput", Title: "Throughput", SVG: svg,
		Caption: fmt.Sprintf("Operations that succeeded under the client policy, per protocol, in %s buckets. Shaded: fault intervals (F1… as in the fault timeline).", s.Width)}, err
}

func errorsChart(in ChartInput) (Chart, error) {
	s := in.Stats
	p := newPlot("Errors (per second)", "time since start (s)", "errors/s")
	timeAxis(p, s)
	p.Add(faultShade{in.Faults})
	w := s.Width.Seconds()
	any := false
	for pi, proto := range s.Protocols {
		clr := protoColors[pi%len(protoColors)]
		raw := bucketXYs(s, pi, func(b *protoBucket) (float64, bool) { return float64(b.AttemptsFail) / w, true })
		ops := bucketXYs(s, pi, func(b *protoBucket) (float64, bool) { return float64(b.OpsFail) / w, true })
		for _, xy := range append(raw, ops...) {
			any = any || xy.Y > 0
		}
		if err := addLine(p, raw, clr, true, proto+" failed attempts (raw)"); err != nil {
			return Chart{}, err
		}
		if err := addLine(p, ops, clr, false, proto+" failed ops (client-visible)"); err != nil {
			return Chart{}, err
		}
	}
	p.Y.Min = 0
	if !any {
		p.Title.Text += " — none"
		p.Y.Max = math.Max(p.Y.Max, 1)
	}
	svg, err := svgOf(p)
	return Chart{ID: "errors", Title: "Errors", SVG: svg,
		Caption: "Dashed: failed attempts (what the servers did). Solid: operations that failed after the client's retry budget (what a user saw). Shaded: fault intervals."}, err
}

func latencyChart(in ChartInput) (Chart, error) {
	s := in.Stats
	p := newPlot("Operation latency (p50 dashed, p99 solid)", "time since start (s)", "latency (ms, log)")
	timeAxis(p, s)
	p.Add(faultShade{in.Faults})
	lo, hi := math.Inf(1), 0.0
	for pi, proto := range s.Protocols {
		clr := protoColors[pi%len(protoColors)]
		q := func(qq float64) func(b *protoBucket) (float64, bool) {
			return func(b *protoBucket) (float64, bool) {
				if b.latency == nil || b.latency.count == 0 {
					return 0, false
				}
				return float64(b.latency.quantile(qq)) / float64(time.Millisecond), true
			}
		}
		p50, p99 := bucketXYs(s, pi, q(0.50)), bucketXYs(s, pi, q(0.99))
		for _, xy := range append(p50, p99...) {
			lo, hi = math.Min(lo, xy.Y), math.Max(hi, xy.Y)
		}
		if err := addLine(p, p50, clr, true, ""); err != nil {
			return Chart{}, err
		}
		if err := addLine(p, p99, clr, false, proto); err != nil {
			return Chart{}, err
		}
	}
	if hi > 0 {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
		p.Y.Min = math.Pow(10, math.Floor(math.Log10(lo)))
		p.Y.Max = math.Pow(10, math.Ceil(math.Log10(hi)))
		if p.Y.Max <= p.Y.Min {
			p.Y.Max = p.Y.Min * 10
		}
	} else {
		noData(p, "successful operations")
	}
	svg, err := svgOf(p)
	return Chart{ID: "latency", Title: "Latency", SVG: svg,
		Caption: fmt.Sprintf("Latency of successful operations (first attempt's start to last attempt's end), per %s bucket; values are accurate to a quarter octave (±19%%). Shaded: fault intervals.", s.Width)}, err
}

func deliveryChart(in ChartInput) (Chart, error) {
	s := in.Stats
	p := newPlot("Delivery latency (accepted → first seen over IMAP)", "delivery latency (s, log)", "deliveries")
	h := &s.delivery
	var bins []plotter.HistogramBin
	for i, n := range h.bins {
		if n == 0 {
			continue
		}
		lo, hi := binBounds(i)
		bins = append(bins, plotter.HistogramBin{Min: lo.Seconds(), Max: hi.Seconds(), Weight: float64(n)})
	}
	caption := fmt.Sprintf("%d deliveries observed; %d accepted deliveries never observed by an IMAP client during the run", h.count, s.DeliveryUnseen)
	if s.PendingDropped > 0 {
		caption += fmt.Sprintf("; %d not tracked (chart memory bound)", s.PendingDropped)
	}
	if len(bins) > 0 {
		hist := &plotter.Histogram{Bins: bins, Width: 0, FillColor: protoColors[0], LineStyle: draw.LineStyle{Color: color.White, Width: vg.Points(0.5)}}
		p.Add(hist)
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = plot.LogTicks{Prec: -1}
		p.X.Min = math.Pow(10, math.Floor(math.Log10(bins[0].Min)))
		p.X.Max = math.Pow(10, math.Ceil(math.Log10(bins[len(bins)-1].Max)))
		p.Y.Min = 0
		p50, p99, mx := h.quantile(0.5), h.quantile(0.99), h.quantile(1)
		caption = fmt.Sprintf("Chart bins: p50 ≤ %s, p99 ≤ %s, max ≤ %s (quarter-octave bins). ", roundDur(p50), roundDur(p99), roundDur(mx)) + caption
		for _, m := range []struct {
			d    time.Duration
			name string
		}{{p50, "p50"}, {p99, "p99"}} {
			p.Add(vline{x: m.d.Seconds(), label: m.name})
		}
	} else {
		noData(p, "IMAP observations of accepted messages")
		p.X.Min, p.X.Max = 0, 1
	}
	if in.DeliveryNote != "" {
		caption += ". " + in.DeliveryNote
	}
	svg, err := svgOf(p)
	return Chart{ID: "delivery", Title: "Delivery latency", SVG: svg, Caption: caption + "."}, err
}

// vline marks a value on the x axis with a labelled vertical line.
type vline struct {
	x     float64
	label string
}

// Plot implements plot.Plotter.
func (v vline) Plot(c draw.Canvas, p *plot.Plot) {
	trX, _ := p.Transforms(&c)
	x := trX(v.x)
	if x < c.Min.X || x > c.Max.X {
		return
	}
	c.StrokeLine2(draw.LineStyle{Color: failRed, Width: vg.Points(1), Dashes: []vg.Length{vg.Points(3), vg.Points(2)}}, x, c.Min.Y, x, c.Max.Y)
	sty := text.Style{Color: failRed, Font: font.From(sans, 8), Handler: p.Title.TextStyle.Handler, XAlign: draw.XLeft, YAlign: draw.YTop}
	c.FillText(sty, vg.Point{X: x + 2, Y: c.Max.Y - 2}, v.label)
}

// gantt draws the downtime rows as bars; row i sits at y = i.
type gantt struct {
	rows []WindowRow
	end  float64
}

// Plot implements plot.Plotter.
func (g gantt) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	for i, r := range g.rows {
		y0, y1 := trY(float64(i)-0.32), trY(float64(i)+0.32)
		for _, iv := range r.Intervals {
			x0, x1 := trX(secs(iv.Start)), trX(secs(iv.End))
			x0, x1 = max(x0, c.Min.X), min(x1, c.Max.X)
			if x1-x0 < 1.5 {
				x1 = x0 + 1.5
			}
			c.FillPolygon(r.Color, []vg.Point{{X: x0, Y: y0}, {X: x1, Y: y0}, {X: x1, Y: y1}, {X: x0, Y: y1}})
		}
	}
}

// DataRange implements plot.DataRanger.
func (g gantt) DataRange() (xmin, xmax, ymin, ymax float64) {
	return 0, g.end, -0.5, float64(len(g.rows)) - 0.5
}

func downtimeChart(in ChartInput) (Chart, error) {
	s := in.Stats
	rows := []WindowRow{}
	var faults []Interval
	for _, f := range in.Faults {
		faults = append(faults, Interval{f.Start, f.End})
	}
	rows = append(rows, WindowRow{Label: "faults", Intervals: faults, Color: barFaultFill})
	rows = append(rows, in.Downtime...)
	total := 0
	for _, r := range in.Downtime {
		total += len(r.Intervals)
	}
	title := "Downtime windows"
	if total == 0 {
		title += " — none"
	}
	p := newPlot(title, "time since start (s)", "")
	timeAxis(p, s)
	// Top to bottom as listed: reverse for the y axis, which grows upwards.
	rev := make([]WindowRow, len(rows))
	names := make([]string, len(rows))
	for i, r := range rows {
		rev[len(rows)-1-i] = r
		names[len(rows)-1-i] = r.Label
	}
	p.Add(faultShade{in.Faults})
	p.Add(gantt{rows: rev, end: p.X.Max})
	p.NominalY(names...)
	p.X.Tick.Marker = plainTicks{}
	p.Y.Min, p.Y.Max = -0.5, float64(len(rows))-0.5
	svg, err := svgOf(p)
	return Chart{ID: "downtime", Title: "Downtime windows", SVG: svg,
		Caption: "Client-visible windows (an operation failed after its retry budget) and raw error windows (any failed attempt), per protocol, against the fault intervals."}, err
}

func roundDur(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond)
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= 100*time.Millisecond:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}
