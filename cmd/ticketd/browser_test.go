package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats-server/v2/server"
)

// The browser test drives the web page in a real Chromium against the real
// server, the way a visitor uses it, on the in-memory bus and on JetStream
// (an embedded NATS server).
//
//	go test ./cmd/ticketd -run Browser -v
//
// Environment:
//
//	GIGBUS_REQUIRE_BROWSER=1     fail, instead of skip, when no Chromium is found (CI sets it)
//	GIGBUS_CHROMIUM=/path        the browser to use (default: chromium, chromium-browser,
//	                             google-chrome, google-chrome-stable, headless-shell on PATH)
//	GIGBUS_SCREENSHOT=docs/screenshot.png
//	                             write a screenshot of the page (in-memory run) there once
//	                             the scenario passed (a relative path is from the module root)
//	GIGBUS_BROWSER_ARTIFACTS=dir where failure screenshots go (default: a new temporary
//	                             directory, kept and logged)
//	GIGBUS_BROWSER_URL=http://host:port
//	                             test a ticketd that is already running (its admin token
//	                             in TICKETD_ADMIN_TOKEN) instead of starting one

func TestBrowser(t *testing.T) {
	chromium := browserFind(t)
	if u := os.Getenv("GIGBUS_BROWSER_URL"); u != "" {
		browserScenario(t, chromium, strings.TrimSuffix(u, "/"), os.Getenv("TICKETD_ADMIN_TOKEN"), os.Getenv("GIGBUS_SCREENSHOT"))
		return
	}
	t.Run("memory", func(t *testing.T) {
		s := startTestServer(t)
		browserScenario(t, chromium, s.URL, s.Token, os.Getenv("GIGBUS_SCREENSHOT"))
	})
	t.Run("nats", func(t *testing.T) {
		// A purchase answers 202 at once here, so the page takes the
		// pending path: it polls the ticket until it is confirmed.
		s := startTestServer(t, "-nats", browserNATS(t), "-purchase-wait", "1ms")
		browserScenario(t, chromium, s.URL, s.Token, "")
	})
}

// browserScenario is what visitors do: the admin adds a concert (after a
// wrong token and a past date, each shown next to its field), a buyer buys
// (clicking twice), a second tab buys by keyboard and the first sees it
// live, the ticket is cancelled on its page and the seat comes back live,
// the page fits a phone, a bad email gets its message next to the field,
// and a purchase whose answer is lost is retried with its Idempotency-Key
// and sells one ticket. It writes a screenshot of the first tab to
// screenshot, when not empty.
func browserScenario(t *testing.T, chromium, base, token, screenshot string) {
	b := newBrowserRun(t, chromium)

	// Two concerts through the API, so the page has a sold-out one and a
	// roomy one besides the concert the admin form adds.
	browserAPI(t, base, token, "POST", "/api/concerts", map[string]any{
		"name": "Gopher Jazz Night", "venue": "Bimhuis, Amsterdam", "date": time.Now().AddDate(0, 1, 0).UTC().Format(time.RFC3339),
		"total_tickets": 120, "ticket_price_cents": 3500, "currency": "EUR",
	}, nil)
	browserAPI(t, base, token, "POST", "/api/concerts", map[string]any{
		"name": "Sold Out Sessions", "venue": "Paradiso, Amsterdam", "date": time.Now().AddDate(0, 2, 0).UTC().Format(time.RFC3339),
		"total_tickets": 0, "ticket_price_cents": 4950, "currency": "EUR",
	}, nil)

	// The in-memory bus reports its topology and the page draws it; a bus
	// that reports none (JetStream) gets a sentence instead.
	var topo struct{ Available bool }
	browserAPI(t, base, "", "GET", "/topology", nil, &topo)
	drawn := `!!document.querySelector("#topology-diagram svg")`
	if !topo.Available {
		drawn = `document.querySelector("#topology-diagram").dataset.state === "unavailable"`
	}

	a := b.tab("first tab")
	b.step(a, "open the page; the stream is live and the topology drawn",
		chromedp.Navigate(base+"/"),
		browserWait(`document.querySelector("#live-status").dataset.state === "on"`),
		browserWait(drawn),
		browserWait(`(() => { const c = cardByName("Sold Out Sessions"); return c && !c.querySelector(".badge-soldout").hidden && c.querySelector(".buy-button").disabled })()`),
	)

	const name = "Live at the Browser"
	// fieldError is true once the field shows an error matching re next to it.
	fieldError := func(input, re string) chromedp.Action[chromedp.Void] {
		return browserWait(`(() => {
			const input = document.querySelector(` + browserJS(input) + `);
			const box = document.getElementById(input.getAttribute("aria-describedby") || "-");
			return input.getAttribute("aria-invalid") === "true" && box && !box.hidden && ` + re + `.test(box.textContent) && box.closest(".field") === input.closest(".field");
		})()`)
	}
	submitAdmin := chromedp.Click(chromedp.CSS(`#admin-form button[type="submit"]`))
	b.step(a, "the admin form shows a wrong token, then a past date, next to their fields",
		chromedp.SendKeys(chromedp.ID("admin-token"), "not-the-token"),
		chromedp.SendKeys(chromedp.ID("admin-name"), name),
		chromedp.SendKeys(chromedp.ID("admin-venue"), "Melkweg, Amsterdam"),
		chromedp.SetValue(chromedp.ID("admin-date"), time.Now().AddDate(0, 0, -2).Format("2006-01-02T15:04")),
		chromedp.SendKeys(chromedp.ID("admin-total_tickets"), "3"),
		chromedp.SendKeys(chromedp.ID("admin-ticket_price_cents"), "12.50"),
		submitAdmin,
		fieldError("#admin-token", `/token/i`),
		browserDo(`document.querySelector("#admin-token").value = ""`),
		chromedp.SendKeys(chromedp.ID("admin-token"), token),
		submitAdmin,
		fieldError("#admin-date", `/future/i`),
		browserWait(`!document.querySelector("#admin-token").hasAttribute("aria-invalid")`),
	)
	b.step(a, "add a concert with the admin form",
		chromedp.SetValue(chromedp.ID("admin-date"), time.Now().AddDate(0, 1, 15).Format("2006-01-02T15:04")),
		submitAdmin,
		browserWait(`document.querySelector("#admin-form .outcome").classList.contains("outcome-ok")`),
		browserWait(`!document.querySelector("#admin-date").hasAttribute("aria-invalid")`),
		browserWait(`!!cardByName(`+browserJS(name)+`)`),
		// The token is kept for the tab, so the field is gone.
		browserWait(`sessionStorage.getItem("gigbus.adminToken") === `+browserJS(token)+` && document.querySelector("#admin-token-field").hidden`),
	)
	id := b.eval(a, "read the new concert's id", `cardByName(`+browserJS(name)+`).dataset.concertId`)
	card := "#concert-" + id
	remaining := func(n int) chromedp.Action[chromedp.Void] {
		return browserWait(fmt.Sprintf(`document.querySelector(%s).textContent === "%d"`, browserJS(card+" .remaining"), n))
	}
	b.step(a, "the new concert shows 3 seats", remaining(3))

	b.step(a, "buy a ticket, clicking twice",
		// Note whether the outcome went through "Pending" (a 202 answer).
		browserDo(`(() => {
			const out = document.querySelector(`+browserJS(card+" .outcome")+`);
			window.sawPending = false;
			new MutationObserver(() => { if (out.textContent.startsWith("Pending")) window.sawPending = true; })
				.observe(out, { childList: true, subtree: true, characterData: true });
		})()`),
		chromedp.SendKeys(chromedp.CSS(card+` input[name="customer_name"]`), "Ada Lovelace"),
		chromedp.SendKeys(chromedp.CSS(card+` input[name="customer_email"]`), "ada@example.com"),
		// Two clicks in a row: the second must not buy a second ticket.
		browserDo(`(() => { const b = document.querySelector(`+browserJS(card+" .buy-button")+`); b.click(); b.click() })()`),
		browserWait(`document.querySelector(`+browserJS(card+" .outcome")+`).classList.contains("outcome-ok")`),
		remaining(2),
	)
	t.Logf("the purchase answered pending first (202, then polled): %s", b.eval(a, "read the path", `String(window.sawPending)`))
	ticket := b.eval(a, "read the ticket id", `document.querySelector(`+browserJS(card+" .outcome a")+`).getAttribute("href").split("/").pop()`)

	bt := b.tab("second tab")
	b.step(bt, "a second tab buys a ticket",
		chromedp.Navigate(base+"/"),
		browserWait(`document.querySelector("#live-status").dataset.state === "on"`),
		remaining(2),
		chromedp.SendKeys(chromedp.CSS(card+` input[name="customer_name"]`), "Grace Hopper"),
		// By keyboard this time: Enter in the email field submits.
		chromedp.SendKeys(chromedp.CSS(card+` input[name="customer_email"]`), "grace@example.com\n"),
		browserWait(`document.querySelector(`+browserJS(card+" .outcome")+`).classList.contains("outcome-ok")`),
	)
	b.step(a, "the first tab sees the second tab's purchase live", remaining(1),
		browserWait(`[...document.querySelectorAll("#event-list .event")].filter(e => e.dataset.type === "TicketPurchased").length >= 2`))
	if got := b.eval(a, "count the purchase requests", `String(document.querySelectorAll('#event-list .event[data-type="TicketRequested"]').length)`); got != "2" {
		b.fail(fmt.Sprintf("the events panel shows %s TicketRequested, want 2 (one per purchase, none for the double click)", got))
	}

	c := b.tab("ticket tab")
	b.step(c, "cancel the first ticket on its page",
		chromedp.Navigate(base+"/tickets/"+ticket),
		browserWait(`document.querySelector("#ticket-status").textContent === "confirmed"`),
		chromedp.Click(chromedp.ID("cancel-button")),
		browserWait(`document.querySelector("#ticket-status").textContent === "cancelled"`),
		browserWait(`document.querySelector("#cancel-form .outcome").classList.contains("outcome-ok") && document.querySelector("#cancel-button").disabled`),
	)
	b.step(a, "the first tab sees the seat come back", remaining(2))
	b.step(c, "on a phone-sized screen nothing overflows sideways",
		chromedp.EmulateViewport(390, 844),
		chromedp.Navigate(base+"/"),
		browserWait(`document.querySelector("#live-status").dataset.state === "on"`),
		browserWait(`document.documentElement.scrollWidth <= window.innerWidth`),
	)

	emailInput := card + ` input[name="customer_email"]`
	b.step(bt, "a bad email shows an error next to the email field",
		browserDo(`document.querySelector(`+browserJS(emailInput)+`).value = ""`),
		chromedp.SendKeys(chromedp.CSS(emailInput), "not-an-email"),
		chromedp.Click(chromedp.CSS(card+" .buy-button")),
		fieldError(emailInput, `/email/i`),
		remaining(2),
	)

	// The answer to a purchase is lost on the way back (the server sold the
	// ticket, the browser sees a network error): the page retries with the
	// same Idempotency-Key and gets that ticket, not a second one.
	keys := b.loseFirstAnswer(bt, "*/api/concerts/*/tickets")
	b.step(bt, "a purchase whose answer is lost is retried with its key and sells one ticket",
		browserDo(`document.querySelector(`+browserJS(emailInput)+`).value = ""`),
		chromedp.SendKeys(chromedp.CSS(emailInput), "grace@example.com"),
		chromedp.Click(chromedp.CSS(card+" .buy-button")),
		browserWait(`document.querySelector(`+browserJS(card+" .outcome")+`).classList.contains("outcome-ok")`),
		remaining(1),
	)
	if k := keys(); len(k) != 2 || k[0] == "" || k[0] != k[1] {
		b.fail(fmt.Sprintf("Idempotency-Key of the purchase and its retry: %q, want the same key twice", k))
	}

	// The API agrees with what the page showed: two seats taken, none twice.
	var got struct {
		AvailableTickets int `json:"available_tickets"`
	}
	browserAPI(t, base, "", "GET", "/api/concerts/"+id, nil, &got)
	if got.AvailableTickets != 1 {
		b.fail(fmt.Sprintf("GET /api/concerts/%s: available_tickets %d, want 1", id, got.AvailableTickets))
	}
	b.checkConsole()

	if screenshot != "" {
		b.screenshot(a, browserModulePath(t, screenshot))
	}
}

// browserRun is one Chromium with its tabs, and what the test needs to
// explain a failure: a screenshot of every tab and their consoles.
type browserRun struct {
	t       *testing.T
	browser context.Context
	tabs    []browserTab

	mu      sync.Mutex
	console []string // "tab: type: text"
	bad     []string // exceptions and CSP violations
}

type browserTab struct {
	name string
	ctx  context.Context
}

func newBrowserRun(t *testing.T, chromium string) *browserRun {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.Flag("lang", "en-GB"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() {
		// Close the browser before the test's temporary directories go.
		ctx, cancel := context.WithTimeout(bctx, 10*time.Second)
		defer cancel()
		_ = chromedp.Cancel(ctx)
		cancelBrowser()
		cancelAlloc()
	})
	if err := chromedp.Do(bctx); err != nil { // starts the browser
		t.Fatalf("start %s: %v", chromium, err)
	}
	return &browserRun{t: t, browser: bctx}
}

// tab opens a new tab (the first call uses the browser's first tab) and
// records its console.
func (b *browserRun) tab(name string) context.Context {
	b.t.Helper()
	ctx := b.browser
	if len(b.tabs) > 0 {
		var cancel context.CancelFunc
		ctx, cancel = chromedp.NewContext(b.browser)
		b.t.Cleanup(cancel)
		if err := chromedp.Do(ctx); err != nil {
			b.t.Fatalf("open %s: %v", name, err)
		}
	}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			line := fmt.Sprintf("%s: %s: %s", name, m.Type, m.Text)
			b.mu.Lock()
			b.console = append(b.console, line)
			if m.Type == chromedp.ConsoleException || strings.Contains(m.Text, "Content Security Policy") {
				b.bad = append(b.bad, line)
			}
			b.mu.Unlock()
		}
	}()
	b.tabs = append(b.tabs, browserTab{name: name, ctx: ctx})
	return ctx
}

// loseFirstAnswer makes tab fail the first response to a POST whose URL
// matches pattern, as a dropped connection would after the server answered,
// and lets every later one through. It returns the Idempotency-Key headers
// of those requests so far.
func (b *browserRun) loseFirstAnswer(tab context.Context, pattern string) (keys func() []string) {
	b.t.Helper()
	var mu sync.Mutex
	var seen []string
	paused := chromedp.Events(tab, fetch.RequestPaused)
	err := chromedp.Do(tab, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{
			{URLPattern: pattern, RequestStage: fetch.RequestStageResponse},
		}})
		return err
	}))
	if err != nil {
		b.fail(fmt.Sprintf("intercept %s: %v", pattern, err))
	}
	go func() {
		for ev, err := range paused {
			if err != nil {
				return
			}
			first := false
			if ev.Request.Method == http.MethodPost {
				key, _ := ev.Request.Headers["Idempotency-Key"].(string)
				mu.Lock()
				seen = append(seen, key)
				first = len(seen) == 1
				mu.Unlock()
			}
			_ = chromedp.Do(tab, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
				if first {
					_, err := cdp.Call(ctx, t, fetch.FailRequest, fetch.FailRequestParams{RequestID: ev.RequestID, ErrorReason: network.ErrorReasonConnectionReset})
					return err
				}
				_, err := cdp.Call(ctx, t, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
				return err
			}))
		}
	}()
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

// step runs actions in tab, bounded, and fails the test with screenshots
// when one fails.
func (b *browserRun) step(tab context.Context, name string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(tab, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.fail(fmt.Sprintf("%s: %v", name, err))
	}
}

// eval returns a JavaScript expression's value in tab as a string.
func (b *browserRun) eval(tab context.Context, name, expr string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(tab, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](browserExpr(expr)))
	if err != nil || v == "" {
		b.fail(fmt.Sprintf("%s: %q, %v", name, v, err))
	}
	return v
}

// fail saves a screenshot of every tab, logs where, and ends the test.
func (b *browserRun) fail(msg string) {
	b.t.Helper()
	dir := os.Getenv("GIGBUS_BROWSER_ARTIFACTS")
	var err error
	if dir == "" {
		dir, err = os.MkdirTemp("", "gigbus-browser-")
	} else {
		err = os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		b.t.Logf("no directory for the failure screenshots: %v", err)
	}
	for i, tab := range b.tabs {
		if err != nil {
			break
		}
		ctx, cancel := context.WithTimeout(tab.ctx, 5*time.Second)
		png, serr := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		cancel()
		path := filepath.Join(dir, fmt.Sprintf("tab%d-%s.png", i+1, strings.ReplaceAll(tab.name, " ", "-")))
		if serr == nil {
			serr = os.WriteFile(path, png, 0o644)
		}
		if serr != nil {
			b.t.Logf("screenshot of the %s: %v", tab.name, serr)
			continue
		}
		b.t.Logf("screenshot of the %s: %s", tab.name, path)
	}
	b.mu.Lock()
	b.t.Logf("browser console:\n%s", strings.Join(b.console, "\n"))
	b.mu.Unlock()
	b.t.Fatal(msg)
}

// checkConsole fails on uncaught exceptions and Content Security Policy
// violations in any tab.
func (b *browserRun) checkConsole() {
	b.t.Helper()
	b.mu.Lock()
	bad := strings.Join(b.bad, "\n")
	b.mu.Unlock()
	if bad != "" {
		b.fail("the page logged errors:\n" + bad)
	}
}

// screenshot writes a full-page PNG of tab to path: the picture in the README.
func (b *browserRun) screenshot(tab context.Context, path string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(tab, 10*time.Second)
	defer cancel()
	// A wide laptop screen: three concerts a row keeps the picture short.
	err := chromedp.Do(ctx,
		chromedp.EmulateViewport(1440, 900),
		browserDo(`(document.activeElement && document.activeElement.blur(), window.scrollTo(0, 0))`),
	)
	if err == nil {
		var img []byte
		img, err = chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err == nil {
			err = os.WriteFile(path, img, 0o644)
		}
	}
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", path, err)
	}
	b.t.Logf("wrote %s", path)
}

// browserExpr wraps a JavaScript expression with the helpers the checks
// use: cardByName(name) is the concert card with that name, or null.
func browserExpr(expr string) string {
	return `(() => {
		const cardByName = (name) => {
			const h = [...document.querySelectorAll("#concerts .concert-name")].find((e) => e.textContent === name);
			return h ? h.closest(".concert") : null;
		};
		return (` + expr + `);
	})()`
}

// browserWait waits until a JavaScript expression is truthy. The step's
// context bounds the wait.
func browserWait(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](browserExpr(expr), chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(0))
}

// browserDo runs JavaScript for its effect.
func browserDo(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](browserExpr(expr))
}

// browserJS quotes s as a JavaScript string.
func browserJS(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// browserFind returns the Chromium to drive, or skips the test (fails it
// under GIGBUS_REQUIRE_BROWSER=1) when there is none.
func browserFind(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("GIGBUS_CHROMIUM"); p != "" {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("GIGBUS_CHROMIUM=%s: %v", p, err)
		}
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no Chromium found (looked for chromium, chromium-browser, google-chrome, google-chrome-stable, headless-shell on PATH; set GIGBUS_CHROMIUM or apt-get install -y chromium)"
	if os.Getenv("GIGBUS_REQUIRE_BROWSER") == "1" {
		t.Fatal(msg + "; GIGBUS_REQUIRE_BROWSER=1 forbids skipping")
	}
	t.Skip(msg)
	return ""
}

// browserNATS starts an embedded NATS server with JetStream for the test
// and returns its URL.
func browserNATS(t *testing.T) string {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready within 10s")
	}
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return ns.ClientURL()
}

// browserAPI calls the JSON API directly (setup and cross-checks).
func browserAPI(t *testing.T, base, token, method, path string, body, out any) {
	t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	if res.StatusCode >= 300 {
		var p bytes.Buffer
		p.ReadFrom(res.Body)
		t.Fatalf("%s %s: %s: %s", method, path, res.Status, p.String())
	}
	if out != nil {
		if err := json.NewDecoder(res.Body).Decode(out); err != nil {
			t.Fatalf("%s %s: decode: %v", method, path, err)
		}
	}
}

// browserModulePath resolves a relative path from the module root (go test
// runs in the package's directory).
func browserModulePath(t *testing.T, path string) string {
	t.Helper()
	if filepath.IsAbs(path) {
		return path
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(d, path)
		}
		if filepath.Dir(d) == d {
			t.Fatal(errors.New("no go.mod above " + dir))
		}
	}
}
