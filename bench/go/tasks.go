// Spawning and fork-join in Go, the same cases as core/benches/tasks.rs:
// 1,000,000 empty goroutines joined with a sync.WaitGroup, and fib(30) with
// a goroutine per fork above a cutoff of 20. JSON lines on stdout, progress
// on stderr; NIMSYNC_BENCH_TASKS and NIMSYNC_BENCH_ROUNDS shrink it.
package main

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"time"
)

const cutoff = 20
const fibN = 30

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func fibSeq(n int) int {
	if n < 2 {
		return n
	}
	return fibSeq(n-1) + fibSeq(n-2)
}

func fibPar(n int) int {
	if n < cutoff {
		return fibSeq(n)
	}
	var right int
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		right = fibPar(n - 2)
		wg.Done()
	}()
	left := fibPar(n - 1)
	wg.Wait()
	return left + right
}

func spawn(tasks int) float64 {
	start := time.Now()
	var wg sync.WaitGroup
	wg.Add(tasks)
	for i := 0; i < tasks; i++ {
		go func() { wg.Done() }()
	}
	wg.Wait()
	return float64(tasks) / time.Since(start).Seconds()
}

func fib() float64 {
	start := time.Now()
	if fibPar(fibN) != fibSeq(fibN) {
		panic("wrong fib")
	}
	return time.Since(start).Seconds() * 1e3
}

func median(v []float64) float64 {
	sort.Float64s(v)
	return v[len(v)/2]
}

func main() {
	tasks := envInt("NIMSYNC_BENCH_TASKS", 1000000)
	rounds := envInt("NIMSYNC_BENCH_ROUNDS", 3)
	cores := runtime.GOMAXPROCS(0)
	fmt.Fprintf(os.Stderr, "go tasks: %d spawns, fib(%d) cutoff %d, %d rounds, GOMAXPROCS %d\n", tasks, fibN, cutoff, rounds, cores)
	spawn(tasks / 10)
	fib()
	var s, f []float64
	for r := 0; r < rounds; r++ {
		fmt.Fprintf(os.Stderr, "\r  round %d/%d", r+1, rounds)
		s = append(s, spawn(tasks))
		f = append(f, fib())
	}
	fmt.Fprintln(os.Stderr)
	fmt.Printf("{\"suite\":\"go\",\"metric\":\"spawn\",\"case\":\"spawn+join 1M\",\"impl\":\"Go goroutines\",\"mps\":%.3f,\"threads\":%d,\"cores\":%d}\n", median(s)/1e6, cores, cores)
	fmt.Printf("{\"suite\":\"go\",\"metric\":\"fib_ms\",\"case\":\"fib(30) cutoff 20\",\"impl\":\"Go goroutines\",\"ms\":%.3f,\"threads\":%d,\"cores\":%d}\n", median(f), cores, cores)
}
