package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/term"
)

// loadConfig is what ticketd load runs.
type loadConfig struct {
	url         string
	token       string
	buyers      int
	requests    int
	seats       int
	idempotency bool
	pollEvery   time.Duration
}

// loadResult is what a load run measured.
type loadResult struct {
	concertID          string
	confirmed          int // 201, or 202 later confirmed
	rejected           int // 409 sold out, or 202 later rejected
	accepted           int // 202 answers (polled to their outcome)
	failed             int // anything else (transport errors, 4xx, 5xx)
	serverErrors       int // 5xx among failed
	elapsed            time.Duration
	latencies          []time.Duration // of each purchase request
	available, total   int             // the server's count after the run
	firstFailureDetail string
}

// load points at a running server, creates a concert, and lets buyers race
// for its seats. It fails when the server oversold or its counts disagree
// with the buyers'.
func load(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ticketd load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := loadConfig{}
	fs.StringVar(&cfg.url, "url", "http://127.0.0.1:8080", "base URL of the server")
	fs.StringVar(&cfg.token, "token", getenv("TICKETD_ADMIN_TOKEN"), "admin token (default $TICKETD_ADMIN_TOKEN)")
	fs.IntVar(&cfg.buyers, "buyers", 64, "concurrent buyers")
	fs.IntVar(&cfg.requests, "requests", 10000, "purchase requests in all")
	fs.IntVar(&cfg.seats, "seats", 10000, "seats of the concert")
	fs.BoolVar(&cfg.idempotency, "idempotency", false, "send an Idempotency-Key with each purchase")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if cfg.buyers < 1 || cfg.requests < 1 || cfg.seats < 0 {
		return errors.New("load: -buyers and -requests must be at least 1, -seats at least 0")
	}
	cfg.url = strings.TrimRight(cfg.url, "/")

	var progress func(done int64)
	if f, ok := stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		progress = func(done int64) { drawBar(stdout, done, int64(cfg.requests)) }
	}
	fmt.Fprintf(stdout, "load: %d buyers, %d requests, %d seats, against %s\n", cfg.buyers, cfg.requests, cfg.seats, cfg.url)
	res, err := runLoad(ctx, cfg, progress)
	if progress != nil {
		fmt.Fprintln(stdout)
	}
	if err != nil {
		return err
	}
	report(stdout, cfg, res)
	return checkLoad(cfg, res)
}

// runLoad is the load run itself, without output; tests call it.
func runLoad(ctx context.Context, cfg loadConfig, progress func(done int64)) (*loadResult, error) {
	client := &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns:        cfg.buyers * 2,
			MaxIdleConnsPerHost: cfg.buyers * 2,
			IdleConnTimeout:     time.Minute,
		},
	}
	defer client.CloseIdleConnections()
	if cfg.pollEvery == 0 {
		cfg.pollEvery = 50 * time.Millisecond
	}
	concertID, err := createConcert(ctx, client, cfg)
	if err != nil {
		return nil, err
	}
	res := &loadResult{concertID: concertID, latencies: make([]time.Duration, cfg.requests)}
	var (
		next    atomic.Int64
		done    atomic.Int64
		mu      sync.Mutex
		pending []string // tickets answered 202, polled afterwards
		wg      sync.WaitGroup
	)
	stopBar := make(chan struct{})
	barDone := make(chan struct{})
	go func() {
		defer close(barDone)
		if progress == nil {
			return
		}
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				progress(done.Load())
			case <-stopBar:
				progress(done.Load())
				return
			}
		}
	}()
	url := cfg.url + "/api/concerts/" + concertID + "/tickets"
	start := time.Now()
	for b := 0; b < cfg.buyers; b++ {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(cfg.requests) || ctx.Err() != nil {
					return
				}
				body := fmt.Sprintf(`{"customer_name":"Buyer %d","customer_email":"buyer%d@example.com"}`, i, i)
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				if cfg.idempotency {
					req.Header.Set("Idempotency-Key", fmt.Sprintf("load-%s-%d", concertID, i))
				}
				t0 := time.Now()
				resp, err := client.Do(req)
				var status int
				var rbody []byte
				if err == nil {
					rbody, _ = io.ReadAll(resp.Body)
					resp.Body.Close()
					status = resp.StatusCode
				}
				res.latencies[i] = time.Since(t0)
				done.Add(1)
				mu.Lock()
				switch {
				case status == http.StatusCreated:
					res.confirmed++
				case status == http.StatusConflict:
					res.rejected++
				case status == http.StatusAccepted:
					res.accepted++
					var t struct {
						ID string `json:"id"`
					}
					json.Unmarshal(rbody, &t)
					pending = append(pending, t.ID)
				default:
					res.failed++
					if status >= 500 {
						res.serverErrors++
					}
					if res.firstFailureDetail == "" {
						if err != nil {
							res.firstFailureDetail = err.Error()
						} else {
							res.firstFailureDetail = fmt.Sprintf("%d %s", status, bytes.TrimSpace(rbody))
						}
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	close(stopBar)
	<-barDone
	res.latencies = res.latencies[:min(int(done.Load()), len(res.latencies))]
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	// Settle the 202s: poll each until it is confirmed or rejected.
	for _, id := range pending {
		status, err := pollTicket(ctx, client, cfg, id)
		if err != nil {
			return nil, err
		}
		switch status {
		case "confirmed", "cancelled":
			res.confirmed++
		case "rejected":
			res.rejected++
		}
	}
	var c struct {
		AvailableTickets int `json:"available_tickets"`
		TotalTickets     int `json:"total_tickets"`
	}
	if err := getJSON(ctx, client, cfg.url+"/api/concerts/"+concertID, &c); err != nil {
		return nil, err
	}
	res.available, res.total = c.AvailableTickets, c.TotalTickets
	return res, nil
}

func createConcert(ctx context.Context, client *http.Client, cfg loadConfig) (string, error) {
	body, _ := json.Marshal(map[string]any{
		"name":               fmt.Sprintf("Load test %s", time.Now().UTC().Format(time.RFC3339)),
		"venue":              "Load Arena",
		"date":               time.Now().AddDate(0, 1, 0).UTC().Format(time.RFC3339),
		"total_tickets":      cfg.seats,
		"ticket_price_cents": 5000,
		"currency":           "EUR",
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.url+"/api/concerts", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+cfg.token)
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("load: create concert: %w", err)
	}
	defer resp.Body.Close()
	rbody, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("load: create concert: %s: %s", resp.Status, bytes.TrimSpace(rbody))
	}
	var c struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(rbody, &c); err != nil || c.ID == "" {
		return "", fmt.Errorf("load: create concert: no id in %s", rbody)
	}
	return c.ID, nil
}

func pollTicket(ctx context.Context, client *http.Client, cfg loadConfig, id string) (string, error) {
	deadline := time.Now().Add(time.Minute)
	for {
		var t struct {
			Status string `json:"status"`
		}
		if err := getJSON(ctx, client, cfg.url+"/api/tickets/"+id, &t); err != nil {
			return "", err
		}
		if t.Status != "pending" {
			return t.Status, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("load: ticket %s still pending after a minute", id)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(cfg.pollEvery):
		}
	}
}

func getJSON(ctx context.Context, client *http.Client, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("load: GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("load: GET %s: %s: %s", url, resp.Status, bytes.TrimSpace(body))
	}
	return json.Unmarshal(body, v)
}

// checkLoad returns an error for every broken invariant: oversell, counts
// that disagree with the server, false refusals, failed requests.
func checkLoad(cfg loadConfig, r *loadResult) error {
	var errs []error
	sold := r.total - r.available
	if r.confirmed > cfg.seats {
		errs = append(errs, fmt.Errorf("OVERSOLD: %d confirmed for %d seats", r.confirmed, cfg.seats))
	}
	if r.available < 0 || sold > cfg.seats {
		errs = append(errs, fmt.Errorf("OVERSOLD: the server shows %d available of %d", r.available, r.total))
	}
	if sold != r.confirmed {
		errs = append(errs, fmt.Errorf("count mismatch: buyers got %d confirmations, the server sold %d", r.confirmed, sold))
	}
	if want := min(cfg.requests, cfg.seats); r.failed == 0 && r.confirmed != want {
		errs = append(errs, fmt.Errorf("false refusals: %d confirmed, want %d", r.confirmed, want))
	}
	if r.failed > 0 {
		errs = append(errs, fmt.Errorf("%d requests failed (%d 5xx); first: %s", r.failed, r.serverErrors, r.firstFailureDetail))
	}
	return errors.Join(errs...)
}

func report(w io.Writer, cfg loadConfig, r *loadResult) {
	lat := slices.Clone(r.latencies)
	slices.Sort(lat)
	secs := r.elapsed.Seconds()
	fmt.Fprintf(w, "concert   %s (%d seats)\n", r.concertID, cfg.seats)
	fmt.Fprintf(w, "requests  %d in %.2fs: %.0f req/s\n", len(lat), secs, float64(len(lat))/secs)
	fmt.Fprintf(w, "confirmed %d (%.0f/s)   rejected (sold out) %d   answered 202 %d   failed %d (5xx %d)\n",
		r.confirmed, float64(r.confirmed)/secs, r.rejected, r.accepted, r.failed, r.serverErrors)
	fmt.Fprintf(w, "latency   p50 %s   p95 %s   p99 %s   max %s\n",
		pct(lat, 50), pct(lat, 95), pct(lat, 99), pct(lat, 100))
	fmt.Fprintf(w, "server    %d of %d seats available (sold %d)\n", r.available, r.total, r.total-r.available)
}

func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p+99)/100 - 1
	i = max(0, min(i, len(sorted)-1))
	return sorted[i].Round(10 * time.Microsecond)
}

func drawBar(w io.Writer, done, total int64) {
	const width = 40
	n := int(done * width / max(total, 1))
	fmt.Fprintf(w, "\r[%s%s] %d/%d", strings.Repeat("#", n), strings.Repeat(" ", width-n), done, total)
}
