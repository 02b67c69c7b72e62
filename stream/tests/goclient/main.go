// goclient drives capsa's streaming server the way client-go does (remotecommand's SPDY
// executor, protocol v4 down to v1, and portforward), over the real spdystream connection and
// framer. It exists for capsa-stream's interop tests; build it with Debian's
// golang-github-docker-spdystream-dev: GOPATH=/usr/share/gocode GO111MODULE=off go build.
//
//	goclient exec URL [-stdin] [-tty] [-stderr=false] [-resize WxH] [-protocols p1,p2]
//	goclient portforward URL -port N [-count N]
//	goclient ws-exec|ws-portforward URL ... (see ws.go)
//
// exec copies its stdin to the stdin stream (then half-closes it), the stdout/stderr streams to
// its own, and exits with the command's exit code read from the error stream (v4 status JSON),
// printing "status: ..." on stderr. portforward opens -count forwarded connections at once on
// one SPDY connection; each sends "request N\n", half-closes and prints "reply N: <text>".
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/ioutil"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/docker/spdystream"
)

func main() {
	if len(os.Args) < 3 {
		fail("usage: goclient exec|portforward URL [flags]")
	}
	mode, target := os.Args[1], os.Args[2]
	fs := flag.NewFlagSet(mode, flag.ExitOnError)
	stdin := fs.Bool("stdin", false, "send stdin")
	tty := fs.Bool("tty", false, "tty")
	stderr := fs.Bool("stderr", true, "want stderr (ignored with -tty)")
	resize := fs.String("resize", "", "send one resize WxH")
	defaultProtocols := "v4.channel.k8s.io,v3.channel.k8s.io,v2.channel.k8s.io,channel.k8s.io"
	switch mode {
	case "ws-exec":
		// client-go's websocket executor offers v5 first.
		defaultProtocols = "v5.channel.k8s.io,v4.channel.k8s.io,v3.channel.k8s.io,v2.channel.k8s.io"
	case "ws-portforward":
		defaultProtocols = "v4.channel.k8s.io"
	}
	protocols := fs.String("protocols", defaultProtocols, "offered protocols")
	port := fs.Int("port", 0, "remote port")
	count := fs.Int("count", 1, "forwarded connections")
	fs.Parse(os.Args[3:])

	switch mode {
	case "exec":
		os.Exit(execMode(target, strings.Split(*protocols, ","), *stdin, *tty, *stderr, *resize))
	case "portforward":
		os.Exit(portForward(target, *port, *count))
	case "ws-exec":
		os.Exit(wsExec(target, strings.Split(*protocols, ","), *stdin, *tty, *stderr, *resize))
	case "ws-portforward":
		os.Exit(wsPortForward(target, strings.Split(*protocols, ",")))
	default:
		fail("unknown mode " + mode)
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "goclient:", msg)
	os.Exit(125)
}

// dial upgrades an HTTP connection to SPDY/3.1 as client-go's SpdyRoundTripper does.
func dial(target string, protocols []string) (*spdystream.Connection, string) {
	u, err := url.Parse(target)
	if err != nil {
		fail(err.Error())
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		fail(err.Error())
	}
	req, _ := http.NewRequest("POST", target, nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "SPDY/3.1")
	for _, p := range protocols {
		req.Header.Add("X-Stream-Protocol-Version", p)
	}
	if err := req.Write(conn); err != nil {
		fail(err.Error())
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		fail(err.Error())
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := ioutil.ReadAll(resp.Body)
		fmt.Fprintf(os.Stderr, "goclient: upgrade refused: %d %s\n", resp.StatusCode, strings.TrimSpace(string(body)))
		os.Exit(126)
	}
	if br.Buffered() > 0 {
		fail("server sent frames before the client spoke")
	}
	sc, err := spdystream.NewConnection(conn, false)
	if err != nil {
		fail(err.Error())
	}
	go sc.Serve(spdystream.NoOpStreamHandler)
	return sc, resp.Header.Get("X-Stream-Protocol-Version")
}

// create opens a stream and waits for its reply, as client-go's connection.CreateStream.
func create(sc *spdystream.Connection, h http.Header) *spdystream.Stream {
	s, err := sc.CreateStream(h, nil, false)
	if err != nil {
		fail(err.Error())
	}
	if err := s.WaitTimeout(30 * time.Second); err != nil {
		fail("waiting for the reply: " + err.Error())
	}
	return s
}

func execMode(target string, protocols []string, stdin, tty, stderr bool, resize string) int {
	sc, proto := dial(target, protocols)
	defer sc.Close()
	if _, err := sc.Ping(); err != nil {
		fail("ping: " + err.Error())
	}
	fmt.Fprintf(os.Stderr, "protocol: %q\n", proto)
	h := http.Header{}
	h.Set("streamType", "error")
	errorStream := create(sc, h)
	var remoteStdin, remoteStdout, remoteStderr, resizeStream *spdystream.Stream
	if stdin {
		h.Set("streamType", "stdin")
		remoteStdin = create(sc, h)
	}
	h.Set("streamType", "stdout")
	remoteStdout = create(sc, h)
	if stderr && !tty {
		h.Set("streamType", "stderr")
		remoteStderr = create(sc, h)
	}
	if tty && proto != "v2.channel.k8s.io" && proto != "channel.k8s.io" && proto != "" {
		h.Set("streamType", "resize")
		resizeStream = create(sc, h)
	}

	errCh := make(chan []byte)
	go func() {
		msg, _ := ioutil.ReadAll(errorStream)
		errCh <- msg
	}()
	if resizeStream != nil && resize != "" {
		var w, hgt uint16
		fmt.Sscanf(resize, "%dx%d", &w, &hgt)
		json.NewEncoder(resizeStream).Encode(map[string]uint16{"Width": w, "Height": hgt})
	}
	if remoteStdin != nil {
		go func() {
			io.Copy(remoteStdin, os.Stdin)
			remoteStdin.Close()
		}()
	}
	var wg sync.WaitGroup
	copyOut := func(dst io.Writer, src io.Reader) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			io.Copy(dst, src)
		}()
	}
	copyOut(os.Stdout, remoteStdout)
	if remoteStderr != nil {
		copyOut(os.Stderr, remoteStderr)
	}
	wg.Wait()
	msg := <-errCh
	if len(msg) == 0 {
		fmt.Fprintln(os.Stderr, "status: none")
		return 0
	}
	if proto != "v4.channel.k8s.io" {
		fmt.Fprintf(os.Stderr, "status: text %s\n", msg)
		return 1
	}
	var status struct {
		Status  string `json:"status"`
		Reason  string `json:"reason"`
		Message string `json:"message"`
		Details struct {
			Causes []struct {
				Reason  string `json:"reason"`
				Message string `json:"message"`
			} `json:"causes"`
		} `json:"details"`
	}
	if err := json.Unmarshal(msg, &status); err != nil {
		fail("status JSON: " + err.Error())
	}
	fmt.Fprintf(os.Stderr, "status: %s %s %s\n", status.Status, status.Reason, status.Message)
	if status.Status == "Success" {
		return 0
	}
	if status.Reason == "NonZeroExitCode" {
		for _, c := range status.Details.Causes {
			if c.Reason == "ExitCode" {
				rc, _ := strconv.Atoi(c.Message)
				return rc
			}
		}
	}
	return 1
}

// portForward mimics client-go's PortForwarder.handleConnection for count connections.
func portForward(target string, port, count int) int {
	sc, proto := dial(target, []string{"portforward.k8s.io"})
	defer sc.Close()
	fmt.Fprintf(os.Stderr, "protocol: %q\n", proto)
	var wg sync.WaitGroup
	var mu sync.Mutex
	rc := 0
	for i := 0; i < count; i++ {
		wg.Add(1)
		go func(id int) {
			defer wg.Done()
			h := http.Header{}
			h.Set("streamType", "error")
			h.Set("port", strconv.Itoa(port))
			h.Set("requestID", strconv.Itoa(id))
			errorStream := create(sc, h)
			// client-go: "we're not writing to this stream"
			errorStream.Close()
			h.Set("streamType", "data")
			dataStream := create(sc, h)
			errCh := make(chan string)
			go func() {
				msg, _ := ioutil.ReadAll(errorStream)
				errCh <- string(msg)
			}()
			fmt.Fprintf(dataStream, "request %d\n", id)
			dataStream.Close()
			reply, _ := ioutil.ReadAll(dataStream)
			e := <-errCh
			mu.Lock()
			defer mu.Unlock()
			if e != "" {
				fmt.Printf("error %d: %s\n", id, e)
				rc = 1
			} else {
				fmt.Printf("reply %d: %s", id, reply)
			}
		}(i)
	}
	wg.Wait()
	return rc
}
