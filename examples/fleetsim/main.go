// Command fleetsim replays a day of mail arrivals with bursts against a
// model of a Portcullis fleet and prints queue depth and latency
// percentiles, to check the sizing in docs/SCALE.md.
//
//	go run ./examples/fleetsim [-messages 100e6] [-nodes 4] [-cores 8] ...
//
// The model, per 10 ms tick (the defaults are the rates measured in
// docs/BENCHMARKS.md; see docs/SCALE.md for where each comes from):
//
//   - Arrivals: Poisson around a diurnal curve (night trough at 0.2 of
//     the mean at 03:30, afternoon peak at 1.8× at 15:30), plus -bursts spam campaigns of
//     10–30 minutes at -burst-factor × the curve, one of them at the peak.
//   - Filtering: nodes × cores servers, -cpu-ms of CPU per message (parse,
//     archive, rules, DNS, AV); waiting for a core follows Erlang C
//     (M/M/c) at the tick's load, and above capacity a backlog of SMTP
//     sessions builds up; beyond -max-sessions per node the sender gets
//     451 (counted, the sender retries later: delay, not loss).
//   - Durable enqueue before the 250: JetStream, -streams queue streams
//     at -stream-rate synced enqueues/s each, and the servers' disks at
//     -fsync synced writes/s each carrying -syncs-per-msg writes per
//     message across the cluster (enqueue and delivery, all replicas).
//   - Delivery: -deliver-rate per node; the queue depth is what is
//     accepted and not yet delivered.
//   - -fail-node HOUR takes one node out for an hour (N+1 headroom).
//
// It is a fluid model with Erlang C waiting: it shows where capacity runs
// out and how deep the queue gets, not tail latencies a real network
// adds.
package main

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"time"
)

type params struct {
	messages           float64
	nodes, cores       int
	cpuMS              float64
	streams            int
	streamRate         float64
	servers            int
	fsync, syncsPerMsg float64
	enqueueMS          float64
	deliverRate        float64
	maxSessions        int
	bursts             int
	burstFactor        float64
	failNode           int
	queue              string
	spoolRate          float64
	seed               uint64
	tick               time.Duration
}

func main() {
	var p params
	flag.Float64Var(&p.messages, "messages", 100e6, "messages per day")
	flag.IntVar(&p.nodes, "nodes", 4, "gateway nodes")
	flag.IntVar(&p.cores, "cores", 8, "cores per node given to filtering")
	flag.Float64Var(&p.cpuMS, "cpu-ms", 2.7, "CPU ms per message on a node: gateway 2.3 (measured, 1 connection) + clamd 0.34 (1.14 ms × 30% with attachments) + DNS 0.06")
	flag.IntVar(&p.streams, "streams", 8, "JetStream queue streams (queue.name shards)")
	flag.Float64Var(&p.streamRate, "stream-rate", 1000, "synced enqueues/s one stream takes (measured 726–1,034)")
	flag.IntVar(&p.servers, "servers", 5, "NATS servers")
	flag.Float64Var(&p.fsync, "fsync", 2800, "synced writes/s per NATS server disk (measured 2,523–3,182)")
	flag.Float64Var(&p.syncsPerMsg, "syncs-per-msg", 21, "synced writes per message across the cluster: (3 enqueue + 4 delivery) × 3 replicas")
	flag.Float64Var(&p.enqueueMS, "enqueue-ms", 1.4, "latency of one JetStream enqueue unloaded (measured 1.38 ms)")
	flag.StringVar(&p.queue, "queue", "spool", "queue backend: spool (each node's local spool) or jetstream (shared streams)")
	flag.Float64Var(&p.spoolRate, "spool-rate", 3918, "durable enqueues/s of one node's spool (median of 3 runs at 64 producers: 1,795 / 3,918 / 12,740)")
	flag.Float64Var(&p.deliverRate, "deliver-rate", 0, "deliveries/s per node; 0: the measured rate of the backend (spool 1,126, JetStream 422, 16 workers)")
	flag.IntVar(&p.maxSessions, "max-sessions", 2000, "SMTP sessions a node holds waiting before 451")
	flag.IntVar(&p.bursts, "bursts", 6, "spam campaigns in the day")
	flag.Float64Var(&p.burstFactor, "burst-factor", 2, "a campaign multiplies the arrival rate by this")
	flag.IntVar(&p.failNode, "fail-node", 15, "hour (0–23) during which one node is down; -1: none")
	flag.Uint64Var(&p.seed, "seed", 1, "random seed")
	flag.DurationVar(&p.tick, "tick", 10*time.Millisecond, "simulation step")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), `usage: fleetsim [flags]

Replays a day of mail arrivals against a model of a fleet and prints queue
depth and latency percentiles per hour, then the day's totals.

Exit status: 0 after a simulation, 2 for bad flags.

Example: go run ./examples/fleetsim -nodes 6 -queue spool

Flags:`)
		flag.PrintDefaults()
	}
	flag.Parse()
	if p.deliverRate == 0 {
		p.deliverRate = 1126
		if p.queue == "jetstream" {
			p.deliverRate = 422
		}
	}
	if p.queue != "spool" && p.queue != "jetstream" {
		fmt.Fprintln(os.Stderr, "fleetsim: -queue spool or jetstream")
		os.Exit(2)
	}
	if p.nodes < 1 || p.cores < 1 || p.streams < 1 || p.servers < 1 || p.tick <= 0 {
		fmt.Fprintln(os.Stderr, "fleetsim: nodes, cores, streams, servers and tick must be positive")
		os.Exit(2)
	}
	simulate(p)
}

// diurnal is the arrival curve's shape, mean 1 over the day.
func diurnal(h float64) float64 {
	// trough 03:30 (0.2), peak 15:30 (1.8): a smooth two-harmonic curve.
	x := 2 * math.Pi * (h - 9.5) / 24
	return 1 + 0.8*math.Sin(x) + 0.15*math.Sin(2*x)
}

type burst struct{ start, end float64 } // hours

type cohort struct {
	born float64 // arrival time, s
	n    float64
}

// hist is a log-bucketed latency histogram weighted by message counts.
type hist struct {
	b   [400]float64 // bucket i: [10^(i/50-4), 10^((i+1)/50-4)) s
	sum float64
}

func (h *hist) add(sec, n float64) {
	if n <= 0 {
		return
	}
	i := int((math.Log10(math.Max(sec, 1e-4)) + 4) * 50)
	h.b[min(max(i, 0), len(h.b)-1)] += n
	h.sum += n
}

func (h *hist) q(p float64) float64 {
	want, acc := p*h.sum, 0.0
	for i, c := range h.b {
		acc += c
		if acc >= want && c > 0 {
			return math.Pow(10, float64(i+1)/50-4)
		}
	}
	return 0
}

// erlangC is the probability that an arrival waits in an M/M/c queue
// with offered load a (erlangs) on c servers.
func erlangC(c int, a float64) float64 {
	if a >= float64(c) {
		return 1
	}
	b := 1.0 // Erlang B, iteratively
	for k := 1; k <= c; k++ {
		b = a * b / (float64(k) + a*b)
	}
	rho := a / float64(c)
	return b / (1 - rho + rho*b)
}

func poisson(r *rand.Rand, mean float64) float64 {
	if mean > 50 {
		return math.Max(0, math.Round(mean+math.Sqrt(mean)*r.NormFloat64()))
	}
	l, k, prod := math.Exp(-mean), 0.0, r.Float64()
	for prod > l {
		k++
		prod *= r.Float64()
	}
	return k
}

func simulate(p params) {
	r := rand.New(rand.NewPCG(p.seed, p.seed^0x9e3779b97f4a7c15))
	dt := p.tick.Seconds()
	mean := p.messages / 86400
	var bursts []burst
	for i := range p.bursts {
		start := r.Float64() * 23.5
		if i == 0 {
			start = 14.8 // one campaign at the peak
		}
		bursts = append(bursts, burst{start, start + (10+20*r.Float64())/60})
	}
	slices.SortFunc(bursts, func(a, b burst) int { return int(a.start*3600 - b.start*3600) })

	service := p.cpuMS / 1000
	jsCap := math.Min(float64(p.streams)*p.streamRate, float64(p.servers)*p.fsync/(p.syncsPerMsg/2))
	// deliveries need the other half of the synced writes
	jsDeliverCap := float64(p.servers) * p.fsync / (p.syncsPerMsg / 2)
	if p.queue == "spool" {
		jsCap, jsDeliverCap = float64(p.nodes)*p.spoolRate, math.Inf(1)
	}

	var (
		filtering              []cohort // SMTP sessions waiting for a core
		enqueue                []cohort // filtered, waiting for the durable enqueue
		queued                 []cohort // accepted (250), not yet delivered
		queueDepth             float64
		accept, e2e            hist
		tempfails              float64
		arrived                float64
		carryF, carryE, carryD float64
		secIn                  float64
	)
	fmt.Printf("fleetsim: %.0f msgs/day (mean %.0f/s), %d nodes × %d cores at %.2f ms/msg = %.0f msgs/s filtering;\n",
		p.messages, mean, p.nodes, p.cores, p.cpuMS, float64(p.nodes*p.cores)/service)
	if p.queue == "spool" {
		fmt.Printf("  queue: each node's spool at %.0f enqueues/s (%.0f/s in all); delivery %.0f/s per node\n", p.spoolRate, jsCap, p.deliverRate)
	} else {
		fmt.Printf("  queue: JetStream %d streams × %.0f/s, %d servers × %.0f fsync/s (%.0f syncs/msg): enqueue cap %.0f/s, delivery cap %.0f/s; delivery %.0f/s per node\n",
			p.streams, p.streamRate, p.servers, p.fsync, p.syncsPerMsg, jsCap, jsDeliverCap, p.deliverRate)
	}
	fmt.Printf("  bursts ×%.1f at", p.burstFactor)
	for _, b := range bursts {
		fmt.Printf(" %02d:%02d–%02d:%02d", int(b.start), int(b.start*60)%60, int(b.end), int(b.end*60)%60)
	}
	fmt.Println()
	fmt.Println("hour  in/s mean  in/s max(1s)  filter%  queue-in%  sessions max  queue max  451s   accept p50    p99")
	type hourStat struct {
		in, inMax, fUtil, jUtil, sess, qMax, tf float64
		acc                                     hist
		ticks                                   int
	}
	var hs hourStat
	ticks := int(86400 / dt)
	for tk := 0; tk < ticks; tk++ {
		now := float64(tk) * dt
		h := now / 3600
		rate := mean * diurnal(h)
		for _, b := range bursts {
			if h >= b.start && h < b.end {
				rate *= p.burstFactor
			}
		}
		nodes := p.nodes
		if int(h) == p.failNode && nodes > 1 {
			nodes--
		}
		servers := float64(nodes * p.cores)
		n := poisson(r, rate*dt)
		arrived += n
		hs.in += n
		secIn += n
		if (tk+1)%int(1/dt) == 0 {
			hs.inMax = math.Max(hs.inMax, secIn)
			secIn = 0
		}

		// Backpressure: sessions beyond max-sessions per node get 451.
		// A session waits through filtering and the durable enqueue.
		var waiting float64
		for _, c := range filtering {
			waiting += c.n
		}
		for _, c := range enqueue {
			waiting += c.n
		}
		if room := float64(nodes*p.maxSessions) - waiting; n > room {
			tempfails += n - math.Max(room, 0)
			hs.tf += n - math.Max(room, 0)
			n = math.Max(room, 0)
		}
		if n > 0 {
			filtering = append(filtering, cohort{now, n})
		}

		// Filtering: capacity this tick, FIFO.
		capF := servers*dt/service + carryF
		load := math.Min((waiting+n)/dt*service, servers*0.999)
		pw := erlangC(int(servers), load)
		var waitMean float64
		if load < servers {
			waitMean = service / (servers - load)
		}
		var used float64
		for len(filtering) > 0 && capF >= 1 {
			c := &filtering[0]
			take := math.Min(c.n, math.Floor(capF))
			capF -= take
			used += take
			enqueue = append(enqueue, cohort{c.born, take})
			c.n -= take
			if c.n <= 0 {
				filtering = filtering[1:]
			}
		}
		carryF = math.Min(capF, 1)
		hs.fUtil += used * service / (servers * dt)

		// Durable enqueue: the stream and disk capacity.
		capE := jsCap*dt + carryE
		var jused float64
		for len(enqueue) > 0 && capE >= 1 {
			c := &enqueue[0]
			take := math.Min(c.n, math.Floor(capE))
			capE -= take
			jused += take
			// the 250: backlog wait + queueing for a core + service + enqueue
			backlog := now - c.born
			for s := 0; s < 4; s++ {
				wait := 0.0
				if r.Float64() < pw && waitMean > 0 {
					wait = r.ExpFloat64() * waitMean
				}
				lat := backlog + wait + service + p.enqueueMS/1000*(1+jused/math.Max(jsCap*dt, 1))
				accept.add(lat, take/4)
				hs.acc.add(lat, take/4)
			}
			queued = append(queued, cohort{c.born, take})
			queueDepth += take
			c.n -= take
			if c.n <= 0 {
				enqueue = enqueue[1:]
			}
		}
		carryE = math.Min(capE, 1)
		hs.jUtil += jused / math.Max(jsCap*dt, 1e-9)

		// Delivery.
		capD := math.Min(float64(nodes)*p.deliverRate, jsDeliverCap)*dt + carryD
		for len(queued) > 0 && capD >= 1 {
			c := &queued[0]
			take := math.Min(c.n, math.Floor(capD))
			capD -= take
			e2e.add(now-c.born+service+0.05, take) // + ~50 ms relay hop
			queueDepth -= take
			c.n -= take
			if c.n <= 0 {
				queued = queued[1:]
			}
		}
		carryD = math.Min(capD, 1)
		hs.sess = math.Max(hs.sess, waiting)
		hs.qMax = math.Max(hs.qMax, queueDepth)
		hs.ticks++

		if (tk+1)%int(3600/dt) == 0 {
			mark := ""
			if int(h) == p.failNode {
				mark = "  (one node down)"
			}
			fmt.Printf("%02d   %9.0f  %8.0f  %6.0f%%  %9.0f%%  %12.0f  %9.0f  %5.0f  %8s  %8s%s\n",
				int(h), hs.in/3600, hs.inMax, 100*hs.fUtil/float64(hs.ticks), 100*hs.jUtil/float64(hs.ticks),
				hs.sess, hs.qMax, hs.tf, dur(hs.acc.q(0.5)), dur(hs.acc.q(0.99)), mark)
			hs = hourStat{}
		}
	}
	fmt.Printf("day: %.0f arrived, %.0f answered 451 (%.3f%%), queue depth at midnight %.0f\n",
		arrived, tempfails, 100*tempfails/math.Max(arrived, 1), queueDepth)
	fmt.Printf("accept latency (arrival → 250): p50 %s  p90 %s  p99 %s  p99.9 %s\n",
		dur(accept.q(0.5)), dur(accept.q(0.9)), dur(accept.q(0.99)), dur(accept.q(0.999)))
	fmt.Printf("end to end (arrival → relayed): p50 %s  p90 %s  p99 %s  p99.9 %s\n",
		dur(e2e.q(0.5)), dur(e2e.q(0.9)), dur(e2e.q(0.99)), dur(e2e.q(0.999)))
}

func dur(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(10 * time.Microsecond).String()
}
