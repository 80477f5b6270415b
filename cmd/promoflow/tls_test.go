package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"

	"github.com/promoflow/promoflow/internal/testenv"
)

// testPKI is a throwaway CA with a server certificate for 127.0.0.1,
// localhost and kafka.test, and a client certificate, as PEM files.
type testPKI struct {
	caFile                string
	serverCert, serverKey string
	clientCert, clientKey string
	notPEM                string
	pool                  *x509.CertPool
	server                tls.Certificate
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	write := func(name string, blocks ...*pem.Block) string {
		var b bytes.Buffer
		for _, blk := range blocks {
			if err := pem.Encode(&b, blk); err != nil {
				t.Fatal(err)
			}
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	newKey := func() (*ecdsa.PrivateKey, *pem.Block) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return k, &pem.Block{Type: "EC PRIVATE KEY", Bytes: der}
	}
	now := time.Now()
	caKey, _ := newKey()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "promoflow test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	leaf := func(serial int64, usage x509.ExtKeyUsage) (certPEM, keyPEM *pem.Block) {
		k, kp := newKey()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "promoflow test"},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			DNSNames: []string{"localhost", "kafka.test"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return &pem.Block{Type: "CERTIFICATE", Bytes: der}, kp
	}
	p := &testPKI{pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	p.caFile = write("ca.pem", &pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	sc, sk := leaf(2, x509.ExtKeyUsageServerAuth)
	p.serverCert, p.serverKey = write("server.pem", sc), write("server-key.pem", sk)
	cc, ck := leaf(3, x509.ExtKeyUsageClientAuth)
	p.clientCert, p.clientKey = write("client.pem", cc), write("client-key.pem", ck)
	p.notPEM = filepath.Join(dir, "not.pem")
	if err := os.WriteFile(p.notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if p.server, err = tls.LoadX509KeyPair(p.serverCert, p.serverKey); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTLSConfigLoad(t *testing.T) {
	pki := newTestPKI(t)
	tests := []struct {
		name     string
		cfg      TLSConfig
		insecure bool
		want     string // substring of the error; "" for success
		check    func(*tls.Config) bool
	}{
		{"off", TLSConfig{}, false, "", func(tc *tls.Config) bool { return tc == nil }},
		{"system roots", TLSConfig{Enabled: true}, false, "",
			func(tc *tls.Config) bool {
				return tc.RootCAs == nil && len(tc.Certificates) == 0 && tc.MinVersion == tls.VersionTLS12 && !tc.InsecureSkipVerify
			}},
		{"ca, client certificate, server name", TLSConfig{Enabled: true, CAFile: pki.caFile, CertFile: pki.clientCert, KeyFile: pki.clientKey, ServerName: "kafka.test"}, false, "",
			func(tc *tls.Config) bool {
				return tc.RootCAs != nil && tc.RootCAs.Equal(pki.pool) && len(tc.Certificates) == 1 && tc.ServerName == "kafka.test"
			}},
		{"insecure", TLSConfig{Enabled: true}, true, "", func(tc *tls.Config) bool { return tc.InsecureSkipVerify }},
		{"files but off", TLSConfig{CAFile: pki.caFile}, false, "kafka.tls: files or options set but enabled is false", nil},
		{"server name but off", TLSConfig{ServerName: "x"}, false, "enabled is false", nil},
		{"insecure but off", TLSConfig{}, true, "enabled is false", nil},
		{"missing ca", TLSConfig{Enabled: true, CAFile: "/nonexistent/ca.pem"}, false, "kafka.tls.ca_file: open /nonexistent/ca.pem", nil},
		{"ca not PEM", TLSConfig{Enabled: true, CAFile: pki.notPEM}, false, "kafka.tls.ca_file: no PEM certificate in " + pki.notPEM, nil},
		{"cert without key", TLSConfig{Enabled: true, CertFile: pki.clientCert}, false, "cert_file and key_file go together", nil},
		{"key without cert", TLSConfig{Enabled: true, KeyFile: pki.clientKey}, false, "cert_file and key_file go together", nil},
		{"key of another cert", TLSConfig{Enabled: true, CertFile: pki.clientCert, KeyFile: pki.serverKey}, false, "kafka.tls: loading cert_file", nil},
		{"missing cert", TLSConfig{Enabled: true, CertFile: "/nonexistent/c.pem", KeyFile: pki.clientKey}, false, "no such file", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.cfg.load("kafka.tls", tc.insecure)
			switch {
			case tc.want != "":
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("load: %v, want an error containing %q", err, tc.want)
				}
			case err != nil:
				t.Errorf("load: %v", err)
			case !tc.check(got):
				t.Errorf("load = %+v", got)
			}
		})
	}
}

// tlsEverywhere is a configuration with TLS on every connection.
func tlsEverywhere(pki *testPKI) string {
	block := fmt.Sprintf("  tls:\n    enabled: true\n    ca_file: %s\n    cert_file: %s\n    key_file: %s\n    server_name: db.test\n",
		pki.caFile, pki.clientCert, pki.clientKey)
	return "kafka:\n" + strings.Replace(block, "db.test", "kafka.test", 1) +
		"  sasl: {mechanism: scram-sha-512, username: promoflow, password: kafka-pw}\n" +
		"redis:\n" + block + "mysql:\n" + block + "clickhouse:\n" + block
}

// TestTLSClientConfigs checks that each client is built with its section's
// TLS configuration. The local Redis, MySQL and ClickHouse speak no TLS,
// so the configurations are inspected rather than used (sinks/mysql and
// sinks/clickhouse show that their TLS is requested on the wire).
func TestTLSClientConfigs(t *testing.T) {
	clearConfigEnv(t)
	pki := newTestPKI(t)
	c, err := loadConfig(writeConfig(t, tlsEverywhere(pki)))
	if err != nil {
		t.Fatal(err)
	}
	want := func(what string, tc *tls.Config, serverName string) {
		t.Helper()
		switch {
		case tc == nil:
			t.Errorf("%s: no TLS config", what)
		case tc.ServerName != serverName || tc.RootCAs == nil || !tc.RootCAs.Equal(pki.pool) || len(tc.Certificates) != 1 || tc.InsecureSkipVerify:
			t.Errorf("%s: TLS config %+v", what, tc)
		}
	}

	cl, err := kgo.NewClient(c.kafkaOpts()...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ktls, _ := cl.OptValue(kgo.DialTLSConfig).(*tls.Config)
	want("kafkaOpts", ktls, "kafka.test")
	if ms, _ := cl.OptValue(kgo.SASL).([]sasl.Mechanism); len(ms) != 1 || ms[0].Name() != "SCRAM-SHA-512" {
		t.Errorf("kafkaOpts: SASL %v, want SCRAM-SHA-512", cl.OptValue(kgo.SASL))
	}
	sc := c.streamConfig(slog.New(slog.NewTextHandler(io.Discard, nil)))
	scl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(sc.Brokers...)}, sc.ClientOpts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer scl.Close()
	stls, _ := scl.OptValue(kgo.DialTLSConfig).(*tls.Config)
	want("streamConfig", stls, "kafka.test")

	rdb := newRedis(c.Redis)
	defer rdb.Close()
	want("redis", rdb.(*redis.Client).Options().TLSConfig, "db.test")
	c.Redis.ClusterAddrs = []string{"r1:6379", "r2:6379"}
	crdb := newRedis(c.Redis)
	defer crdb.Close()
	want("redis cluster", crdb.(*redis.ClusterClient).Options().TLSConfig, "db.test")

	if !strings.HasPrefix(c.MySQL.TLSName, "promoflow-mysql-") {
		t.Errorf("mysql: TLSName %q, want a registered name", c.MySQL.TLSName)
	}
	want("clickhouse", c.ClickHouse.TLSConfig, "db.test")

	// Every client gets a copy: a change by one cannot reach the others.
	if ktls == c.Kafka.tlsConfig || rdb.(*redis.Client).Options().TLSConfig == c.Redis.tlsConfig {
		t.Error("clients share the loaded *tls.Config")
	}

	// TLS off: plain connections.
	clearConfigEnv(t)
	off, err := loadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	if len(off.kafkaOpts()) != 1 || off.Kafka.tlsConfig != nil || off.MySQL.TLSName != "" || off.ClickHouse.TLSConfig != nil {
		t.Errorf("TLS off: %d kafka options, %v, %q, %v", len(off.kafkaOpts()), off.Kafka.tlsConfig, off.MySQL.TLSName, off.ClickHouse.TLSConfig)
	}
	plain := newRedis(off.Redis)
	defer plain.Close()
	if plain.(*redis.Client).Options().TLSConfig != nil {
		t.Error("redis: TLS without tls.enabled")
	}
}

// TestTLSConfigRejects reports every TLS problem of every section at once.
func TestTLSConfigRejects(t *testing.T) {
	clearConfigEnv(t)
	pki := newTestPKI(t)
	_, err := loadConfig(writeConfig(t, fmt.Sprintf(`
kafka:
  tls: {enabled: true, ca_file: /nonexistent/ca.pem}
redis:
  tls: {enabled: true, cert_file: %[1]s}
mysql:
  tls: {ca_file: %[2]s}
clickhouse:
  tls: {enabled: true, ca_file: %[3]s}
`, pki.clientCert, pki.caFile, pki.notPEM)))
	for _, w := range []string{"kafka.tls.ca_file: open /nonexistent/ca.pem", "redis.tls: cert_file and key_file go together",
		"mysql.tls: files or options set but enabled is false", "clickhouse.tls.ca_file: no PEM certificate"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v does not contain %q", err, w)
		}
	}
}

// captureStderr runs fn with os.Stderr, where the loggers write, sent to
// the returned string.
func captureStderr(t *testing.T, fn func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stderr
	os.Stderr = w
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		done <- string(b)
	}()
	defer func() {
		os.Stderr = saved
	}()
	fn()
	os.Stderr = saved
	w.Close()
	return <-done
}

// runCommand runs promoflow with args and returns its exit code and
// everything it wrote: stdout, stderr and the logs. It fails the test if
// the command does not end within a minute.
func runCommand(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := -1
	logs := captureStderr(t, func() {
		done := make(chan int, 1)
		go func() { done <- runMain(args, &out, &errOut) }()
		select {
		case code = <-done:
		case <-time.After(time.Minute):
			t.Errorf("promoflow %s did not end within a minute", strings.Join(args, " "))
		}
	})
	return code, out.String() + errOut.String() + logs
}

// kafkaConfig writes a configuration with the brokers and the kafka
// section's other lines.
func kafkaConfig(t *testing.T, brokers []string, lines string) string {
	t.Helper()
	return writeConfig(t, "kafka:\n  brokers: ["+strings.Join(brokers, ", ")+"]\n"+lines)
}

// TestSASLTopicsApply runs `promoflow topics apply` against a kfake cluster
// that requires SASL, with SCRAM-SHA-256 and PLAIN users, and then the
// other admin commands with the same configuration.
func TestSASLTopicsApply(t *testing.T) {
	_, brokers := testenv.Kafka(t, 1, kfake.EnableSASL(),
		kfake.Superuser("SCRAM-SHA-256", "admin", "scram-pw"), kfake.Superuser("PLAIN", "plainuser", "plain-pw"))
	scramFile := writeSecret(t, "kafka_password", "scram-pw\n", 0o600)

	t.Run("scram-sha-256 with password_file", func(t *testing.T) {
		clearConfigEnv(t)
		cfg := kafkaConfig(t, brokers, "  sasl:\n    mechanism: scram-sha-256\n    username: admin\n    password_file: "+scramFile+"\n")
		code, out := runCommand(t, "topics", "apply", "--config", cfg)
		if code != 0 || !strings.Contains(out, "created  coupon.claims") {
			t.Fatalf("topics apply exited %d:\n%s", code, out)
		}
		// Every admin command reaches the cluster the same way.
		for _, args := range [][]string{{"topics", "list"}, {"groups"}, {"lag"}, {"dlq", "list"}} {
			if code, out := runCommand(t, append(args, "--config", cfg)...); code != 0 {
				t.Errorf("promoflow %s exited %d:\n%s", strings.Join(args, " "), code, out)
			}
		}
	})
	t.Run("plain with the password from the environment", func(t *testing.T) {
		clearConfigEnv(t)
		t.Setenv("PROMOFLOW_KAFKA_SASL_PASSWORD", "plain-pw")
		cfg := kafkaConfig(t, brokers, "  sasl: {mechanism: PLAIN, username: plainuser}\n")
		code, out := runCommand(t, "topics", "apply", "--config", cfg)
		if code != 0 || !strings.Contains(out, "no changes") {
			t.Fatalf("topics apply exited %d:\n%s", code, out)
		}
		if !strings.Contains(out, "plain without kafka.tls") {
			t.Errorf("no warning about PLAIN in clear text:\n%s", out)
		}
	})

	failures := []struct {
		name, kafka string
		env         string
		want        []string
	}{
		{"wrong scram password", "  sasl: {mechanism: scram-sha-256, username: admin}\n", "wrong-scram-pw",
			[]string{"promoflow topics: kafka at " + brokers[0] + " (plaintext, SASL scram-sha-256 as admin)", "listing brokers"}},
		{"wrong plain password", "  sasl: {mechanism: plain, username: plainuser}\n", "wrong-plain-pw",
			[]string{"SASL plain as plainuser"}},
		{"scram password to the plain user", "  sasl: {mechanism: scram-sha-256, username: plainuser}\n", "plain-pw",
			[]string{"SASL scram-sha-256 as plainuser"}},
		{"no sasl", "", "", []string{"kafka at " + brokers[0] + " (plaintext)", "is SASL missing?"}},
	}
	for _, f := range failures {
		t.Run(f.name, func(t *testing.T) {
			clearConfigEnv(t)
			t.Setenv("PROMOFLOW_KAFKA_SASL_PASSWORD", f.env)
			code, out := runCommand(t, "topics", "apply", "--config", kafkaConfig(t, brokers, f.kafka))
			if code != 1 {
				t.Fatalf("topics apply exited %d, want 1:\n%s", code, out)
			}
			for _, w := range f.want {
				if !strings.Contains(out, w) {
					t.Errorf("output does not contain %q:\n%s", w, out)
				}
			}
			if f.env != "" && strings.Contains(out, f.env) {
				t.Errorf("the output shows the password %q:\n%s", f.env, out)
			}
		})
	}
	// The other admin commands say how they reached Kafka too, not a bare EOF.
	clearConfigEnv(t)
	t.Setenv("PROMOFLOW_KAFKA_SASL_PASSWORD", "wrong-scram-pw")
	cfg := kafkaConfig(t, brokers, "  sasl: {mechanism: scram-sha-256, username: admin}\n")
	for _, args := range [][]string{{"groups"}, {"lag"}, {"dlq", "list"}, {"dlq", "replay", "--all", "--dry-run"}} {
		code, out := runCommand(t, append(args, "--config", cfg)...)
		if code != 1 || !strings.Contains(out, "SASL scram-sha-256 as admin") || strings.Contains(out, "wrong-scram-pw") {
			t.Errorf("promoflow %s with a wrong password exited %d, want 1 and the SASL mechanism and user named (never the password):\n%s",
				strings.Join(args, " "), code, out)
		}
	}
}

// TestTLSTopicsApply runs `promoflow topics apply` against kfake brokers
// that speak TLS only, one cluster requiring client certificates and SASL
// on top.
func TestTLSTopicsApply(t *testing.T) {
	pki := newTestPKI(t)
	_, brokers := testenv.Kafka(t, 1, kfake.TLS(&tls.Config{Certificates: []tls.Certificate{pki.server}, MinVersion: tls.VersionTLS12}))
	tests := []struct {
		name, tls string
		want      []string // in the output of a failure; nil: success
	}{
		{"ca_file", "{enabled: true, ca_file: " + pki.caFile + "}", nil},
		{"server_name on the certificate", "{enabled: true, ca_file: " + pki.caFile + ", server_name: kafka.test}", nil},
		{"insecure_skip_verify", "{enabled: true, insecure_skip_verify: true}", []string{"insecure_skip_verify is set", "NOT verified"}},
		{"system roots do not know the CA", "{enabled: true}", []string{"kafka at " + brokers[0] + " (TLS)", "certificate signed by unknown authority"}},
		{"server_name not on the certificate", "{enabled: true, ca_file: " + pki.caFile + ", server_name: wrong.test}", []string{"not wrong.test"}},
		{"plaintext to a TLS broker", "{enabled: false}", []string{"(plaintext)", "is TLS missing?"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clearConfigEnv(t)
			code, out := runCommand(t, "topics", "apply", "--config", kafkaConfig(t, brokers, "  tls: "+tc.tls+"\n"))
			wantCode := 1
			if tc.want == nil || strings.Contains(tc.want[0], "insecure") {
				wantCode = 0
			}
			if code != wantCode {
				t.Fatalf("topics apply exited %d, want %d:\n%s", code, wantCode, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output does not contain %q:\n%s", w, out)
				}
			}
		})
	}

	t.Run("mutual TLS and SASL", func(t *testing.T) {
		_, brokers := testenv.Kafka(t, 1, kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "promoflow", "mtls-pw"),
			kfake.TLS(&tls.Config{
				Certificates: []tls.Certificate{pki.server}, MinVersion: tls.VersionTLS12,
				ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pki.pool,
			}))
		clearConfigEnv(t)
		t.Setenv("PROMOFLOW_KAFKA_SASL_PASSWORD", "mtls-pw")
		sasl := "  sasl: {mechanism: scram-sha-512, username: promoflow}\n"
		withCert := fmt.Sprintf("  tls: {enabled: true, ca_file: %s, cert_file: %s, key_file: %s}\n", pki.caFile, pki.clientCert, pki.clientKey)
		if code, out := runCommand(t, "topics", "apply", "--config", kafkaConfig(t, brokers, withCert+sasl)); code != 0 {
			t.Fatalf("topics apply with a client certificate exited %d:\n%s", code, out)
		}
		withoutCert := "  tls: {enabled: true, ca_file: " + pki.caFile + "}\n"
		if code, out := runCommand(t, "topics", "apply", "--config", kafkaConfig(t, brokers, withoutCert+sasl)); code != 1 {
			t.Fatalf("topics apply without a client certificate exited %d, want 1:\n%s", code, out)
		}
	})
}

// TestSecretNeverInOutput runs failing commands with known passwords and
// looks for them in everything the commands print and log.
func TestSecretNeverInOutput(t *testing.T) {
	_, brokers := testenv.Kafka(t, 1, kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "admin", "right-pw"))
	const secret = "Sup3r-s3cret-Pa55"
	file := writeSecret(t, "pw", secret+"\n", 0o600)
	cases := []struct {
		name string
		env  map[string]string
		yaml string
		args []string
	}{
		{"kafka: wrong password from the environment", map[string]string{"PROMOFLOW_KAFKA_SASL_PASSWORD": secret},
			"  sasl: {mechanism: scram-sha-256, username: admin}\n", []string{"topics", "apply"}},
		{"kafka: wrong password from a file, plain", nil,
			"  sasl: {mechanism: plain, username: admin, password_file: " + file + "}\n", []string{"groups"}},
		{"kafka: wrong password inline", nil,
			"  sasl: {mechanism: scram-sha-256, username: admin, password: " + secret + "}\n", []string{"lag"}},
		{"invalid configuration", map[string]string{"PROMOFLOW_KAFKA_SASL_PASSWORD": secret, "PROMOFLOW_REDIS_PASSWORD": secret},
			"  sasl: {mechanism: gssapi, username: admin}\n", []string{"topics", "apply"}},
		{"conflicting secrets", nil,
			"  sasl: {mechanism: plain, username: admin, password: " + secret + ", password_file: " + file + "}\n", []string{"topics", "apply"}},
		{"mysql: dsn with a password", nil,
			"mysql:\n  dsn: \"root:" + secret + "@tcp(127.0.0.1:1)/\"\n", []string{"draw", "verify", "no-such-draw"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clearConfigEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			body := tc.yaml
			if strings.HasPrefix(body, "  ") {
				body = "kafka:\n  brokers: [" + brokers[0] + "]\n" + body
			}
			code, out := runCommand(t, append(tc.args, "--config", writeConfig(t, body))...)
			if code == 0 {
				t.Fatalf("promoflow %s succeeded:\n%s", strings.Join(tc.args, " "), out)
			}
			if strings.Contains(out, secret) || strings.Contains(out, "Sup3r") {
				t.Errorf("the output shows the secret:\n%s", out)
			}
			t.Logf("output:\n%s", out)
		})
	}
}

// TestIntegrationSecretMySQL fails to log in to the local MySQL with a
// password from the environment, and checks that the password shows
// nowhere.
func TestIntegrationSecretMySQL(t *testing.T) {
	if os.Getenv("PROMOFLOW_SKIP_INTEGRATION") == "1" {
		t.Skip("PROMOFLOW_SKIP_INTEGRATION=1")
	}
	const secret = "Wr0ng-mysql-Pa55"
	clearConfigEnv(t)
	t.Setenv("PROMOFLOW_MYSQL_DSN", testenv.MySQLDSN())
	t.Setenv("PROMOFLOW_MYSQL_PASSWORD", secret)
	t.Setenv("PROMOFLOW_MYSQL_DATABASE_PREFIX", testenv.Name("pf"))
	code, out := runCommand(t, "draw", "verify", "no-such-draw")
	if code == 0 {
		t.Fatalf("draw verify succeeded with a wrong password:\n%s", out)
	}
	if !strings.Contains(out, "using password: YES") && !strings.Contains(out, "Access denied") {
		t.Errorf("want the server's refusal of the password:\n%s", out)
	}
	if strings.Contains(out, secret) {
		t.Errorf("the output shows the password:\n%s", out)
	}
}
