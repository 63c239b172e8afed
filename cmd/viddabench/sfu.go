package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/vidda/vidda/signaling/sfu"
	"github.com/vidda/vidda/signaling/sfu/sfubench"
)

// runSFU is `viddabench sfu`: N concurrent 1:1 visits of pion peers
// through the SFU, which runs as a child process (`viddabench sfu
// --serve`) so its CPU and memory are measured alone.
func runSFU(ctx context.Context, args []string, _ func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("viddabench sfu", flag.ContinueOnError)
	fs.SetOutput(stdout)
	visits := fs.String("visits", "20,50,100", "comma-separated numbers of concurrent 1:1 visits, one run each")
	duration := fs.Duration("duration", 10*time.Second, "measured window of each run")
	warmup := fs.Duration("warmup", 3*time.Second, "media flowing before the window")
	fallback := fs.Bool("fallback", false, "keep the SFU's audio-only fallback on (off by default: a loaded loopback must not turn video off mid-measurement)")
	serve := fs.Bool("serve", false, "internal: be the SFU process, driven over stdin/stdout")
	profile := fs.String("cpuprofile", "", "write the SFU process's CPU profile of the measured window (of the last run) to this file")
	memProfile := fs.String("memprofile", "", "write the SFU process's heap profile, at the end of the last run, to this file")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	cfg := sfu.DefaultConfig()
	cfg.UDPAddr = "127.0.0.1:0"
	cfg.TCPAddr = ""
	if !*fallback {
		cfg.AudioOnlyBelow = 0
	}
	if *serve {
		// Errors only: peers closing at the end make pion warn a lot.
		log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
		var hooks sfubench.Hooks
		if *profile != "" {
			// The measured window only: the connect phase's handshakes
			// would hide the forwarding path.
			f, err := os.Create(*profile)
			if err != nil {
				return fmt.Errorf("--cpuprofile: %w", err)
			}
			defer f.Close()
			defer pprof.StopCPUProfile() // a run that fails inside the window still leaves a whole profile
			hooks.Window = func(start bool) {
				if !start {
					pprof.StopCPUProfile()
					return
				}
				if err := pprof.StartCPUProfile(f); err != nil {
					log.Error("--cpuprofile", "err", err)
				}
			}
		}
		if *memProfile != "" {
			hooks.Loaded = func() {
				if f, err := os.Create(*memProfile); err == nil {
					_ = pprof.WriteHeapProfile(f)
					_ = f.Close()
				}
			}
		}
		return sfubench.Serve(ctx, cfg, os.Stdin, os.Stdout, log, hooks)
	}
	var sizes []int
	for f := range strings.SplitSeq(*visits, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("--visits: %q is not a positive number", f)
		}
		sizes = append(sizes, n)
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find my own binary: %w", err)
	}
	command := []string{self, "sfu", "--serve"}
	if *fallback {
		command = append(command, "--fallback")
	}
	if *profile != "" {
		command = append(command, "--cpuprofile", *profile)
	}
	if *memProfile != "" {
		command = append(command, "--memprofile", *memProfile)
	}

	fmt.Fprintf(stdout, "SFU forwarding: 1:1 visits of pion peers on loopback, each peer sending ~500 kbit/s VP8-sized video (57 pkt/s x 1,100 B) + Opus (50 pkt/s x 100 B); the SFU in its own process\n")
	fmt.Fprintf(stdout, "load average before: %s\n\n", loadavg())
	fmt.Fprintf(stdout, "%7s %6s %10s %6s %10s %10s %7s %9s %10s %9s %12s %7s %8s\n",
		"visits", "peers", "sent/s", "paced", "fwd pkt/s", "recv/s", "loss", "SFU cores", "pkt/s/core", "gen cores", "KiB/peer RSS", "a-only", "connect")
	for _, n := range sizes {
		r, err := sfubench.Run(ctx, sfubench.Options{Command: command, Visits: n, Warmup: *warmup, Duration: *duration})
		if err != nil {
			return fmt.Errorf("%d visits: %w", n, err)
		}
		fmt.Fprintf(stdout, "%7d %6d %10.0f %5.0f%% %10.0f %10.0f %6.2f%% %9.2f %10.0f %9.2f %12.0f %7d %8s\n",
			r.Visits, r.Participants, r.SentPPS, 100*r.SentPPS/r.NominalPPS, r.ForwardedPPS, r.ReceivedPPS, 100*r.Loss, r.SFUCores, r.PPSPerCore,
			r.GeneratorCores, r.KiBPerParticipant, r.AudioOnly, r.ConnectTime.Round(100*time.Millisecond))
	}
	fmt.Fprintf(stdout, "\nload average after: %s (2 cores, shared)\n", loadavg())
	fmt.Fprintln(stdout, "SFU cores: CPU seconds of the SFU process per second of the window (/proc/<pid>/stat); pkt/s/core = fwd pkt/s / SFU cores.")
	fmt.Fprintln(stdout, "paced: sent/s as a share of what the peers are paced to send; under 100% the generator (or the machine) is the bottleneck,")
	fmt.Fprintln(stdout, "       the SFU forwards fewer packets and its fixed per-peer costs (timers, RTCP) weigh more in pkt/s/core.")
	fmt.Fprintln(stdout, "gen cores: the generator (this process: all peers' SRTP, pacing, counting), which shares the machine with the SFU.")
	return nil
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
