// Command go_quic_peer is quic-go 0.29 (Debian's golang-github-lucas-clemente-quic-go-dev) as a peer of
// quicsilver in tests/interop/test_quicgo_interop.py: a server and a client, QUIC v1, ALPN "TEST".
//
// Stream modes (-mode, the same on both sides of a test):
//
//	echo      each stream is echoed back, FIN after FIN
//	download  the client sends an 8-byte big-endian N then FIN; the server answers N random bytes, FIN
//	upload    the client sends bytes until FIN; the server answers "<count> <sha256 hex>", FIN
//	close     the server reads one stream to FIN, then closes the connection with -close-code/-close-reason
//	wait      the client opens no stream and waits for the server to close the connection
//	trickle   the client writes "tick" on one stream every 50 ms until the connection ends
//	reset     the client writes "ping" then keeps writing; the server reads 4 bytes, then stops the
//	          stream both ways with -close-code (STOP_SENDING and RESET_STREAM)
//
// The client closes the connection with -close-code/-close-reason when done (not in wait mode). With
// -resume it then connects again, resuming the TLS session and sending its streams as 0-RTT.
//
// Every result is one line on stdout ("key=value" words after a first word naming the event):
//
//	listening addr=127.0.0.1:PORT
//	handshake role=server alpn=TEST version=0x00000001 cipher=0x1303 datagrams=true resumed=false used0rtt=false
//	retry-sent / retry-received
//	echo streams=K bytes=N ok
//	download bytes=N sha256=H
//	upload bytes=N sha256=H [reply=<count>:<sha256>]
//	datagrams sent=K received=M
//	paused / 0rtt-rejected                     (client, -resume)
//	reset stream=ID code=C                     (server)
//	stream-reset read-code=C write-code=C      (client; -1: no stream error)
//	closed role=client kind=application remote=true code=7 reason=bye keyupdates-local=A keyupdates-remote=B
//	error what=... msg=...   (then exit status 1)
//
// The key update interval is an internal variable in quic-go 0.29 (its own interop client sets it), so
// this file is built as a package inside the quic-go import path (the test builds it in an overlay GOPATH).
package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	quic "github.com/lucas-clemente/quic-go"
	"github.com/lucas-clemente/quic-go/internal/handshake"
	"github.com/lucas-clemente/quic-go/logging"
)

const alpn = "TEST"

var (
	outMu sync.Mutex
	flags struct {
		role        string
		addr        string
		mode        string
		retry       bool
		datagrams   bool
		dgramCount  int
		keyUpdate   uint64
		chacha      bool
		closeCode   uint64
		closeReason string
		streams     int
		size        int
		timeout     time.Duration
		versions    string
		resume      bool
		early       bool
		resetKey    string
		conns       int
		repeat      int
		tokens      bool
		pause       time.Duration
		cidLength   int
	}
)

func emit(format string, args ...interface{}) {
	outMu.Lock()
	defer outMu.Unlock()
	fmt.Printf(format+"\n", args...)
}

func fail(what string, err error) {
	emit("error what=%s msg=%q", what, fmt.Sprint(err))
	os.Exit(1)
}

// word makes a value safe for one space-separated key=value word.
func word(s string) string {
	if s == "" {
		return "-"
	}
	return strings.ReplaceAll(s, " ", "_")
}

// --- tracing: Retry, the version, key updates and the close reason, as seen by quic-go ---------------

type tracer struct {
	logging.NullTracer
	role string
}

func (t *tracer) TracerForConnection(_ context.Context, _ logging.Perspective, _ logging.ConnectionID) logging.ConnectionTracer {
	return &connTracer{role: t.role, done: make(chan struct{})}
}

func (t *tracer) SentPacket(_ net.Addr, hdr *logging.Header, _ logging.ByteCount, _ []logging.Frame) {
	if logging.PacketTypeFromHeader(hdr) == logging.PacketTypeRetry {
		emit("retry-sent")
	}
}

type connTracer struct {
	logging.NullConnectionTracer
	role          string
	mu            sync.Mutex
	version       logging.VersionNumber
	keyUpdLocal   int
	keyUpdRemote  int
	closeErr      error
	closedPrinted bool
	done          chan struct{} // closed once the "closed" line is out
}

func (t *connTracer) StartedConnection(local, remote net.Addr, _, _ logging.ConnectionID) {
	connTracers.Store(local.String()+" "+remote.String(), t)
}

func (t *connTracer) SentPacket(hdr *logging.ExtendedHeader, _ logging.ByteCount, _ *logging.AckFrame, _ []logging.Frame) {
	if hdr.IsLongHeader {
		t.mu.Lock()
		t.version = hdr.Version
		t.mu.Unlock()
	}
}

func (t *connTracer) ReceivedRetry(*logging.Header) { emit("retry-received") }

func (t *connTracer) UpdatedKey(_ logging.KeyPhase, remote bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if remote {
		t.keyUpdRemote++
	} else {
		t.keyUpdLocal++
	}
}

func (t *connTracer) ClosedConnection(err error) {
	t.mu.Lock()
	t.closeErr = err
	t.mu.Unlock()
}

func (t *connTracer) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closedPrinted {
		return
	}
	t.closedPrinted = true
	defer close(t.done)
	kind, remote, code, reason := "unknown", false, uint64(0), fmt.Sprint(t.closeErr)
	var appErr *quic.ApplicationError
	var trErr *quic.TransportError
	var idleErr *quic.IdleTimeoutError
	var hsErr *quic.HandshakeTimeoutError
	var resetErr *quic.StatelessResetError
	switch {
	case errors.As(t.closeErr, &appErr):
		kind, remote, code, reason = "application", appErr.Remote, uint64(appErr.ErrorCode), appErr.ErrorMessage
	case errors.As(t.closeErr, &trErr):
		kind, remote, code, reason = "transport", trErr.Remote, uint64(trErr.ErrorCode), trErr.ErrorMessage
	case errors.As(t.closeErr, &idleErr):
		kind = "idle-timeout"
	case errors.As(t.closeErr, &hsErr):
		kind = "handshake-timeout"
	case errors.As(t.closeErr, &resetErr):
		kind, remote = "stateless-reset", true
	}
	emit("closed role=%s kind=%s remote=%t code=%d reason=%s keyupdates-local=%d keyupdates-remote=%d",
		t.role, kind, remote, code, word(reason), t.keyUpdLocal, t.keyUpdRemote)
}

func (t *connTracer) versionSeen() logging.VersionNumber {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.version
}

// --- configuration --------------------------------------------------------------------------------

func quicConfig(role string) (*quic.Config, *tracer) {
	tr := &tracer{role: role}
	conf := &quic.Config{
		Versions:        parseVersions(flags.versions),
		EnableDatagrams: flags.datagrams,
		MaxIdleTimeout:  flags.timeout,
		Tracer:          tr,
		// 1,000 concurrent streams fit; quicsilver's default (100) limits what it opens towards us
		MaxIncomingStreams: 1000,
	}
	if flags.retry {
		conf.RequireAddressValidation = func(net.Addr) bool { return true }
	}
	conf.ConnectionIDLength = flags.cidLength
	if flags.tokens {
		conf.TokenStore = quic.NewLRUTokenStore(4, 4)
	}
	if flags.resetKey != "" {
		key, err := hex.DecodeString(flags.resetKey)
		if err != nil {
			fail("stateless-reset-key", err)
		}
		conf.StatelessResetKey = key
	}
	return conf, tr
}

// parseVersions reads "v1,draft29,v2draft" (most preferred first).
func parseVersions(list string) []quic.VersionNumber {
	names := map[string]quic.VersionNumber{
		"v1": quic.Version1, "draft29": quic.VersionDraft29, "v2draft": quic.Version2,
	}
	var versions []quic.VersionNumber
	for _, name := range strings.Split(list, ",") {
		v, ok := names[name]
		if !ok {
			fail("versions", fmt.Errorf("unknown version %q", name))
		}
		versions = append(versions, v)
	}
	return versions
}

func tlsConfig(server bool) *tls.Config {
	conf := &tls.Config{NextProtos: []string{alpn}, MinVersion: tls.VersionTLS13}
	if flags.chacha {
		// quic-go's TLS (qtls) honours CipherSuites for TLS 1.3, unlike crypto/tls
		conf.CipherSuites = []uint16{tls.TLS_CHACHA20_POLY1305_SHA256}
	}
	if server {
		conf.Certificates = []tls.Certificate{selfSigned()}
	} else {
		conf.InsecureSkipVerify = true
		conf.ServerName = "localhost"
	}
	return conf
}

// selfSigned is an ECDSA P-256 certificate for "localhost", valid for a day.
func selfSigned() tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		fail("key", err)
	}
	template := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		fail("certificate", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// handshakeDone is closed once the handshake completes (a Listener's connections come complete).
func handshakeDone(conn quic.Connection) <-chan struct{} {
	if early, ok := conn.(quic.EarlyConnection); ok {
		return early.HandshakeComplete().Done()
	}
	done := make(chan struct{})
	close(done)
	return done
}

func reportHandshake(role string, conn quic.Connection, tr *connTracer) {
	state := conn.ConnectionState()
	emit("handshake role=%s alpn=%s version=%#08x cipher=%#04x datagrams=%t resumed=%t used0rtt=%t",
		role, word(state.TLS.NegotiatedProtocol), uint32(tr.versionSeen()), state.TLS.CipherSuite,
		state.SupportsDatagrams, state.TLS.DidResume, state.TLS.Used0RTT)
}

// --- server ---------------------------------------------------------------------------------------

func runServer() {
	conf, _ := quicConfig("server")
	var listener acceptor
	var err error
	if flags.early {
		var l quic.EarlyListener
		l, err = quic.ListenAddrEarly(flags.addr, tlsConfig(true), conf)
		listener = earlyListener{l}
	} else {
		var l quic.Listener
		l, err = quic.ListenAddr(flags.addr, tlsConfig(true), conf)
		listener = plainListener{l}
	}
	if err != nil {
		fail("listen", err)
	}
	emit("listening addr=%s", listener.Addr())
	// stdin closing (the test ending, or dying) stops the server
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	for {
		conn, err := listener.accept()
		if err != nil {
			fail("accept", err)
		}
		go serveConn(conn, tracerOf(conn))
	}
}

// acceptor is a Listener or an EarlyListener (whose connections may carry 0-RTT data).
type acceptor interface {
	Addr() net.Addr
	accept() (quic.Connection, error)
}

type plainListener struct{ quic.Listener }

func (l plainListener) accept() (quic.Connection, error) { return l.Accept(context.Background()) }

type earlyListener struct{ quic.EarlyListener }

func (l earlyListener) accept() (quic.Connection, error) { return l.Accept(context.Background()) }

// connTracers maps a connection's local and remote addresses to its tracer (StartedConnection
// registers it).
var connTracers sync.Map

func tracerOf(conn quic.Connection) *connTracer {
	ct, ok := connTracers.Load(conn.LocalAddr().String() + " " + conn.RemoteAddr().String())
	if !ok {
		fail("tracer", fmt.Errorf("no tracer for %s", conn.RemoteAddr()))
	}
	return ct.(*connTracer)
}

func serveConn(conn quic.Connection, ct *connTracer) {
	// an early connection is served before its handshake completes: report it once it has
	go func() {
		select {
		case <-handshakeDone(conn):
		case <-conn.Context().Done():
		}
		if conn.ConnectionState().TLS.HandshakeComplete {
			reportHandshake("server", conn, ct)
		}
	}()
	if flags.datagrams && conn.ConnectionState().SupportsDatagrams {
		go func() {
			for {
				msg, err := conn.ReceiveMessage()
				if err != nil {
					return
				}
				_ = conn.SendMessage(msg)
			}
		}()
	}
	for {
		stream, err := conn.AcceptStream(context.Background())
		if err != nil {
			return
		}
		if flags.mode == "close" {
			if _, err := io.Copy(io.Discard, stream); err != nil {
				fail("close-read", err)
			}
			_ = conn.CloseWithError(quic.ApplicationErrorCode(flags.closeCode), flags.closeReason)
			return
		}
		go serveStream(stream)
	}
}

func serveStream(stream quic.Stream) {
	defer stream.Close()
	switch flags.mode {
	case "echo":
		if _, err := io.Copy(stream, stream); err != nil {
			emit("error what=echo msg=%q", err.Error())
		}
	case "download":
		var header [8]byte
		if _, err := io.ReadFull(stream, header[:]); err != nil {
			emit("error what=download-request msg=%q", err.Error())
			return
		}
		if _, err := io.Copy(io.Discard, stream); err != nil {
			emit("error what=download-request msg=%q", err.Error())
			return
		}
		n := binary.BigEndian.Uint64(header[:])
		payload := make([]byte, n)
		_, _ = rand.Read(payload)
		sum := sha256.Sum256(payload)
		if _, err := stream.Write(payload); err != nil {
			emit("error what=download-write msg=%q", err.Error())
			return
		}
		emit("download bytes=%d sha256=%s", n, hex.EncodeToString(sum[:]))
	case "upload":
		hash := sha256.New()
		n, err := io.Copy(hash, stream)
		if err != nil {
			emit("error what=upload-read msg=%q", err.Error())
			return
		}
		digest := hex.EncodeToString(hash.Sum(nil))
		emit("upload bytes=%d sha256=%s", n, digest)
		_, _ = fmt.Fprintf(stream, "%d %s", n, digest)
	case "reset":
		var ping [4]byte
		if _, err := io.ReadFull(stream, ping[:]); err != nil {
			emit("error what=reset-read msg=%q", err.Error())
			return
		}
		stream.CancelRead(quic.StreamErrorCode(flags.closeCode))
		stream.CancelWrite(quic.StreamErrorCode(flags.closeCode))
		emit("reset stream=%d code=%d", stream.StreamID(), flags.closeCode)
	}
}

// --- client ---------------------------------------------------------------------------------------

func runClient() {
	conf, _ := quicConfig("client")
	tlsConf := tlsConfig(false)
	ctx, cancel := context.WithTimeout(context.Background(), flags.timeout)
	defer cancel()
	if flags.resume {
		// a first connection brings a session ticket; the second resumes, sending its streams as 0-RTT
		tlsConf.ClientSessionCache = tls.NewLRUClientSessionCache(4)
		conn, err := quic.DialAddrContext(ctx, flags.addr, tlsConf, conf)
		if err != nil {
			fail("dial", err)
		}
		runConnection(ctx, conn)
		if flags.pause > 0 {
			emit("paused")
			time.Sleep(flags.pause)
		}
		early, err := quic.DialAddrEarlyContext(ctx, flags.addr, tlsConf, conf)
		if err != nil {
			fail("dial-early", err)
		}
		runConnection(ctx, early)
		return
	}
	var wg sync.WaitGroup
	for i := 0; i < flags.conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < flags.repeat; j++ {
				runConnection(ctx, dial(ctx, tlsConf, conf))
			}
		}()
	}
	wg.Wait()
}

// dial connects to -addr; with -cid-length, from a socket of our own (quic-go's DialAddr uses
// zero-length connection IDs).
func dial(ctx context.Context, tlsConf *tls.Config, conf *quic.Config) quic.Connection {
	if flags.cidLength == 0 {
		conn, err := quic.DialAddrContext(ctx, flags.addr, tlsConf, conf)
		if err != nil {
			fail("dial", err)
		}
		return conn
	}
	remote, err := net.ResolveUDPAddr("udp", flags.addr)
	if err != nil {
		fail("resolve", err)
	}
	pconn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		fail("socket", err)
	}
	conn, err := quic.DialContext(ctx, pconn, remote, "localhost", tlsConf, conf)
	if err != nil {
		fail("dial", err)
	}
	return conn
}

func runConnection(ctx context.Context, conn quic.Connection) {
	ct := tracerOf(conn)
	switch flags.mode {
	case "echo":
		err := clientEcho(ctx, conn)
		if early, ok := conn.(quic.EarlyConnection); ok && errors.Is(err, quic.Err0RTTRejected) {
			// the server rejected 0-RTT: quic-go resets the early streams; do it again in 1-RTT
			emit("0rtt-rejected")
			conn = early.NextConnection()
			err = clientEcho(ctx, conn)
		}
		if err != nil {
			fail("echo", err)
		}
	case "download":
		clientDownload(ctx, conn)
	case "upload":
		clientUpload(ctx, conn)
	case "trickle":
		clientTrickle(ctx, conn)
	case "reset":
		clientReset(ctx, conn)
	case "wait":
	default:
		fail("mode", fmt.Errorf("unknown mode %q", flags.mode))
	}
	select {
	case <-handshakeDone(conn):
	case <-conn.Context().Done():
	}
	if conn.ConnectionState().TLS.HandshakeComplete {
		reportHandshake("client", conn, ct)
	}
	if flags.dgramCount > 0 {
		clientDatagrams(conn)
	}
	if flags.mode != "wait" {
		_ = conn.CloseWithError(quic.ApplicationErrorCode(flags.closeCode), flags.closeReason)
	}
	select {
	case <-ct.done:
	case <-ctx.Done():
		fail("close", errors.New("the connection did not close in time"))
	}
}

// clientTrickle writes "tick" on a stream every 50 ms until the connection ends (or -timeout).
func clientTrickle(ctx context.Context, conn quic.Connection) {
	stream, err := conn.OpenStreamSync(ctx)
	if err != nil {
		fail("open", err)
	}
	for conn.Context().Err() == nil && ctx.Err() == nil {
		if _, err := stream.Write([]byte("tick")); err != nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// clientReset expects the server to stop our stream both ways: reading fails with RESET_STREAM's
// code, writing (soon) with STOP_SENDING's.
func clientReset(ctx context.Context, conn quic.Connection) {
	stream, err := conn.OpenStreamSync(ctx)
	if err != nil {
		fail("open", err)
	}
	if _, err := stream.Write([]byte("ping")); err != nil {
		fail("reset-write", err)
	}
	readCode, writeCode := -1, -1
	var streamErr *quic.StreamError
	if _, err := io.ReadAll(stream); errors.As(err, &streamErr) {
		readCode = int(streamErr.ErrorCode)
	}
	chunk := make([]byte, 1000)
	for ctx.Err() == nil {
		if _, err := stream.Write(chunk); err != nil {
			if errors.As(err, &streamErr) {
				writeCode = int(streamErr.ErrorCode)
			}
			break
		}
		time.Sleep(time.Millisecond)
	}
	emit("stream-reset read-code=%d write-code=%d", readCode, writeCode)
}

func clientEcho(ctx context.Context, conn quic.Connection) error {
	var wg sync.WaitGroup
	errs := make(chan error, flags.streams)
	for i := 0; i < flags.streams; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			stream, err := conn.OpenStreamSync(ctx)
			if err != nil {
				errs <- err
				return
			}
			payload := make([]byte, flags.size+i)
			_, _ = rand.Read(payload)
			go func() {
				_, _ = stream.Write(payload)
				_ = stream.Close()
			}()
			got, err := io.ReadAll(stream)
			if err != nil {
				errs <- fmt.Errorf("stream %d: %w", stream.StreamID(), err)
			} else if !bytes.Equal(got, payload) {
				errs <- fmt.Errorf("stream %d: %d bytes echoed differ from the %d sent", stream.StreamID(), len(got), len(payload))
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	if err, failed := <-errs; failed {
		return err
	}
	emit("echo streams=%d bytes=%d ok", flags.streams, flags.size)
	return nil
}

func clientDownload(ctx context.Context, conn quic.Connection) {
	stream, err := conn.OpenStreamSync(ctx)
	if err != nil {
		fail("open", err)
	}
	var header [8]byte
	binary.BigEndian.PutUint64(header[:], uint64(flags.size))
	if _, err := stream.Write(header[:]); err != nil {
		fail("download-request", err)
	}
	_ = stream.Close()
	hash := sha256.New()
	n, err := io.Copy(hash, stream)
	if err != nil {
		fail("download-read", err)
	}
	emit("download bytes=%d sha256=%s", n, hex.EncodeToString(hash.Sum(nil)))
}

func clientUpload(ctx context.Context, conn quic.Connection) {
	stream, err := conn.OpenStreamSync(ctx)
	if err != nil {
		fail("open", err)
	}
	payload := make([]byte, flags.size)
	_, _ = rand.Read(payload)
	sum := sha256.Sum256(payload)
	go func() {
		if _, err := stream.Write(payload); err != nil {
			fail("upload-write", err)
		}
		_ = stream.Close()
	}()
	reply, err := io.ReadAll(stream)
	if err != nil {
		fail("upload-reply", err)
	}
	emit("upload bytes=%d sha256=%s reply=%s", len(payload), hex.EncodeToString(sum[:]),
		strings.ReplaceAll(string(reply), " ", ":"))
}

// clientDatagrams sends -datagrams-count datagrams, once more each 100 ms while fewer than all
// have come back (datagrams are unreliable), for at most 3 s.
func clientDatagrams(conn quic.Connection) {
	if !conn.ConnectionState().SupportsDatagrams {
		fail("datagrams", errors.New("the peer did not negotiate datagrams"))
	}
	received := map[string]bool{}
	incoming := make(chan string, 1024)
	go func() {
		for {
			msg, err := conn.ReceiveMessage()
			if err != nil {
				close(incoming)
				return
			}
			incoming <- string(msg)
		}
	}()
	deadline := time.After(3 * time.Second)
	sent := 0
	for len(received) < flags.dgramCount {
		for i := 0; i < flags.dgramCount; i++ {
			msg := fmt.Sprintf("datagram %d", i)
			if !received[msg] {
				if err := conn.SendMessage([]byte(msg)); err != nil {
					fail("send-datagram", err)
				}
				sent++
			}
		}
		tick := time.After(100 * time.Millisecond)
	wait:
		for {
			select {
			case msg, ok := <-incoming:
				if !ok {
					break wait
				}
				received[msg] = true
			case <-tick:
				break wait
			case <-deadline:
				emit("datagrams sent=%d received=%d", sent, len(received))
				return
			}
		}
	}
	emit("datagrams sent=%d received=%d", sent, len(received))
}

func main() {
	flag.StringVar(&flags.role, "role", "server", "server or client")
	flag.StringVar(&flags.addr, "addr", "127.0.0.1:0", "server: address to listen on; client: server address")
	flag.StringVar(&flags.mode, "mode", "echo", "echo, download, upload, close, wait, trickle or reset")
	flag.BoolVar(&flags.retry, "retry", false, "server: demand a Retry from every client")
	flag.BoolVar(&flags.datagrams, "datagrams", false, "enable RFC 9221 datagrams (the server echoes them)")
	flag.IntVar(&flags.dgramCount, "datagram-count", 0, "client: datagrams to send and expect back")
	flag.Uint64Var(&flags.keyUpdate, "key-update-interval", 0, "packets per key phase (0: quic-go's default)")
	flag.BoolVar(&flags.chacha, "chacha20", false, "offer / accept TLS_CHACHA20_POLY1305_SHA256 only")
	flag.Uint64Var(&flags.closeCode, "close-code", 0, "application error code of our CONNECTION_CLOSE")
	flag.StringVar(&flags.closeReason, "close-reason", "", "reason phrase of our CONNECTION_CLOSE")
	flag.IntVar(&flags.streams, "streams", 1, "client echo: concurrent streams")
	flag.IntVar(&flags.size, "size", 1000, "client: bytes per echo stream (plus its index), download or upload size")
	flag.DurationVar(&flags.timeout, "timeout", 20*time.Second, "client: give up after; both: idle timeout")
	flag.StringVar(&flags.versions, "versions", "v1", "QUIC versions, most preferred first: v1, draft29, v2draft")
	flag.IntVar(&flags.conns, "conns", 1, "client: concurrent connections, each running -mode")
	flag.IntVar(&flags.repeat, "repeat", 1, "client: connections made one after the other (by each of -conns)")
	flag.BoolVar(&flags.tokens, "tokens", false, "client: keep NEW_TOKEN tokens for the next connections")
	flag.BoolVar(&flags.resume, "resume", false, "client: connect twice, the second time resuming with 0-RTT")
	flag.DurationVar(&flags.pause, "pause", 0, "client -resume: print \"paused\" and wait this long between the connections")
	flag.IntVar(&flags.cidLength, "cid-length", 0, "length of our connection IDs (server: 0 means 4; 4..18)")
	flag.BoolVar(&flags.early, "early", false, "server: accept 0-RTT (an EarlyListener)")
	flag.StringVar(&flags.resetKey, "stateless-reset-key", "", "server: hex key deriving stateless reset tokens")
	flag.Parse()
	if flags.keyUpdate > 0 {
		handshake.KeyUpdateInterval = flags.keyUpdate
	}
	switch flags.role {
	case "server":
		runServer()
	case "client":
		runClient()
	default:
		fail("role", fmt.Errorf("unknown role %q", flags.role))
	}
}
