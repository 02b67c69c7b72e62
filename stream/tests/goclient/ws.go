package main

// The websocket modes, as client-go's websocket executor (remotecommand v5, gorilla/websocket)
// and kubelet's websocket port-forward clients speak:
//
//	goclient ws-exec URL [-stdin] [-tty] [-stderr=false] [-resize WxH] [-protocols p1,p2]
//	goclient ws-portforward URL [-protocols p]

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"io/ioutil"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

func wsDial(target string, protocols []string) (*websocket.Conn, string) {
	d := websocket.Dialer{Subprotocols: protocols, HandshakeTimeout: 30 * time.Second}
	u := strings.Replace(target, "http://", "ws://", 1)
	c, resp, err := d.Dial(u, http.Header{})
	if err != nil {
		if resp != nil {
			body, _ := ioutil.ReadAll(resp.Body)
			fmt.Fprintf(os.Stderr, "goclient: upgrade refused: %d %s\n", resp.StatusCode, strings.TrimSpace(string(body)))
			os.Exit(126)
		}
		fail(err.Error())
	}
	return c, c.Subprotocol()
}

// wsRead returns the channel and payload of the next data message (decoding base64 ones).
func wsRead(c *websocket.Conn, b64 bool) (byte, []byte, error) {
	for {
		kind, msg, err := c.ReadMessage()
		if err != nil {
			return 0, nil, err
		}
		if len(msg) == 0 {
			continue
		}
		if b64 {
			if kind != websocket.TextMessage {
				fail("binary message in a base64 protocol")
			}
			data, err := base64.StdEncoding.DecodeString(string(msg[1:]))
			if err != nil {
				fail("bad base64 message")
			}
			return msg[0] - '0', data, nil
		}
		if kind != websocket.BinaryMessage {
			fail("text message in a binary protocol")
		}
		return msg[0], msg[1:], nil
	}
}

func wsWrite(c *websocket.Conn, mu *sync.Mutex, b64 bool, ch byte, data []byte) error {
	mu.Lock()
	defer mu.Unlock()
	if b64 {
		return c.WriteMessage(websocket.TextMessage, append([]byte{'0' + ch}, []byte(base64.StdEncoding.EncodeToString(data))...))
	}
	return c.WriteMessage(websocket.BinaryMessage, append([]byte{ch}, data...))
}

func wsExec(target string, protocols []string, stdin, tty, stderr bool, resize string) int {
	c, proto := wsDial(target, protocols)
	defer c.Close()
	fmt.Fprintf(os.Stderr, "protocol: %q\n", proto)
	b64 := strings.Contains(proto, "base64")
	var mu sync.Mutex
	pong := make(chan struct{}, 1)
	c.SetPongHandler(func(string) error {
		select {
		case pong <- struct{}{}:
		default:
		}
		return nil
	})
	mu.Lock()
	c.WriteControl(websocket.PingMessage, []byte("heartbeat"), time.Now().Add(10*time.Second))
	mu.Unlock()
	if tty && resize != "" {
		var w, h uint16
		fmt.Sscanf(resize, "%dx%d", &w, &h)
		b, _ := json.Marshal(map[string]uint16{"Width": w, "Height": h})
		wsWrite(c, &mu, b64, 4, b)
	}
	if stdin {
		go func() {
			buf := make([]byte, 32*1024)
			for {
				n, err := os.Stdin.Read(buf)
				if n > 0 {
					wsWrite(c, &mu, b64, 0, buf[:n])
				}
				if err != nil {
					break
				}
			}
			if proto == "v5.channel.k8s.io" {
				mu.Lock()
				c.WriteMessage(websocket.BinaryMessage, []byte{255, 0})
				mu.Unlock()
			}
		}()
	}
	var status []byte
	first := -1
	for {
		ch, data, err := wsRead(c, b64)
		if err != nil {
			break
		}
		if first < 0 {
			first = int(ch)
		}
		switch ch {
		case 1:
			os.Stdout.Write(data)
		case 2:
			os.Stderr.Write(data)
		case 3:
			status = append(status, data...)
		default:
			fail(fmt.Sprintf("message on channel %d", ch))
		}
	}
	select {
	case <-pong:
		fmt.Fprintln(os.Stderr, "pong: yes")
	default:
		fmt.Fprintln(os.Stderr, "pong: no")
	}
	fmt.Fprintf(os.Stderr, "first channel: %d\n", first)
	if len(status) == 0 {
		fmt.Fprintln(os.Stderr, "status: none")
		return 0
	}
	if !strings.HasPrefix(proto, "v4.") && !strings.HasPrefix(proto, "v5.") {
		fmt.Fprintf(os.Stderr, "status: text %s\n", status)
		return 1
	}
	var st struct {
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
	if err := json.Unmarshal(status, &st); err != nil {
		fail("status JSON: " + err.Error())
	}
	fmt.Fprintf(os.Stderr, "status: %s %s %s\n", st.Status, st.Reason, st.Message)
	if st.Status == "Success" {
		return 0
	}
	for _, cause := range st.Details.Causes {
		if cause.Reason == "ExitCode" {
			rc, _ := strconv.Atoi(cause.Message)
			return rc
		}
	}
	return 1
}

// wsPortForward forwards the URL's ports (in its query); for each sends "request <port>\n"
// on its data channel and prints "reply <port>: ..." or "error <port>: ..." lines.
func wsPortForward(target string, protocols []string) int {
	c, proto := wsDial(target, protocols)
	defer c.Close()
	fmt.Fprintf(os.Stderr, "protocol: %q\n", proto)
	b64 := strings.Contains(proto, "base64")
	var mu sync.Mutex
	ports := map[byte]uint16{}
	replies := map[byte][]byte{}
	errs := map[byte][]byte{}
	for {
		ch, data, err := wsRead(c, b64)
		if err == io.EOF || err != nil {
			break
		}
		if _, known := ports[ch]; !known {
			if len(data) != 2 {
				fail(fmt.Sprintf("channel %d did not start with its port", ch))
			}
			port := binary.LittleEndian.Uint16(data)
			ports[ch] = port
			if ch%2 == 0 {
				wsWrite(c, &mu, b64, ch, []byte(fmt.Sprintf("request %d\n", port)))
			}
			continue
		}
		if ch%2 == 0 {
			replies[ch] = append(replies[ch], data...)
		} else {
			errs[ch] = append(errs[ch], data...)
		}
	}
	rc := 0
	for ch := byte(0); int(ch) < len(ports); ch += 2 {
		if e := errs[ch+1]; len(e) > 0 {
			fmt.Printf("error %d: %s\n", ports[ch], e)
			rc = 1
		} else {
			fmt.Printf("reply %d: %s", ports[ch], replies[ch])
		}
	}
	return rc
}
