package testdb

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// The TLS fixtures scripts/services.sh makes on both local servers: a user
// that must use TLS (password; MariaDB REQUIRE SSL, PostgreSQL hostssl +
// hostnossl reject) and one that must present a client certificate of the
// dev CA (MariaDB REQUIRE X509, PostgreSQL cert auth). Both may use every
// pipeline_test_… database. A local development credential, nothing more.
const (
	TLSUser     = "pipeline_tls"
	TLSPassword = "pipeline-tls-dev"
	TLSCertUser = "pipeline_tls_cert"
)

// Files of the local development CA in TLSDir.
const (
	TLSCA         = "ca.pem"       // signed both servers' certificate (localhost, 127.0.0.1, ::1)
	TLSWrongCA    = "wrong-ca.pem" // an unrelated CA: verification against it must fail
	TLSClientCert = "client.pem"   // CN pipeline_tls_cert, signed by ca.pem
	TLSClientKey  = "client.key"
)

// TLSDir is where scripts/services.sh keeps the local development CA:
// TESTDB_TLS_DIR, else PIPELINE_DEV_TLS_DIR (the script's own setting),
// else /var/lib/pipeline-dev-tls.
func TLSDir() string {
	return env("TESTDB_TLS_DIR", env("PIPELINE_DEV_TLS_DIR", "/var/lib/pipeline-dev-tls"))
}

// TLSFile is the path of name in TLSDir; a missing file fails the test with
// how to make it.
func TLSFile(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(TLSDir(), name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("testdb: TLS fixture %s: %v; %s (it makes the local dev CA)", p, err, howToStart)
	}
	return p
}

// Forward listens on listenHost (e.g. 127.0.0.2, an address no server
// certificate lists) and relays every connection to addr until the test
// ends, when it closes the listener and every relayed connection. It
// returns the port. Tests use it to reach a real server by a host name its
// certificate does not name.
func Forward(t testing.TB, listenHost, addr string) int {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(listenHost, "0"))
	if err != nil {
		t.Fatalf("testdb: listen on %s: %v", listenHost, err)
	}
	f := &forwarder{conns: map[net.Conn]bool{}}
	t.Cleanup(func() {
		ln.Close()
		f.closeAll()
		f.wg.Wait()
	})
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				f.relay(in, addr)
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

type forwarder struct {
	wg     sync.WaitGroup
	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]bool
}

// track remembers c for closeAll; false (and c closed) once closing began.
func (f *forwarder) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		c.Close()
		return false
	}
	f.conns[c] = true
	return true
}

func (f *forwarder) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for c := range f.conns {
		c.Close()
	}
}

// relay copies both ways between in and a new connection to addr, closing
// both when either side ends.
func (f *forwarder) relay(in net.Conn, addr string) {
	defer in.Close()
	if !f.track(in) {
		return
	}
	out, err := net.Dial("tcp", addr)
	if err != nil {
		return
	}
	defer out.Close()
	if !f.track(out) {
		return
	}
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(out, in); done <- struct{}{} }()
	go func() { _, _ = io.Copy(in, out); done <- struct{}{} }()
	<-done
}
