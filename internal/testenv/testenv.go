// Package testenv is the one place tests find the real services they talk
// to. Addresses come from the environment with local defaults, so the same
// tests run here, in CI and against a developer's own servers:
//
//	PROMOFLOW_TEST_REDIS       127.0.0.1:6379
//	PROMOFLOW_TEST_MYSQL       root@tcp(127.0.0.1:3306)/
//	PROMOFLOW_TEST_CLICKHOUSE  127.0.0.1:9000
//
// Kafka is always an in-process kfake cluster reached over TCP.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/topology"
)

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// RedisAddr returns the address of the test Redis.
func RedisAddr() string { return env("PROMOFLOW_TEST_REDIS", "127.0.0.1:6379") }

// MySQLDSN returns a go-sql-driver DSN for the test MariaDB/MySQL server
// without a database name.
func MySQLDSN() string { return env("PROMOFLOW_TEST_MYSQL", "root@tcp(127.0.0.1:3306)/") }

// ClickHouseAddr returns the native-protocol address of the test ClickHouse.
func ClickHouseAddr() string { return env("PROMOFLOW_TEST_CLICKHOUSE", "127.0.0.1:9000") }

// Name returns a short random name for isolating one test's databases,
// key prefixes, topics and groups from another's.
func Name(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + "_" + hex.EncodeToString(b)
}

// Kafka starts a kfake cluster with n brokers persisting to a temporary
// directory and returns its seed addresses. It is shut down with the test.
func Kafka(t testing.TB, n int, opts ...kfake.Opt) (*kfake.Cluster, []string) {
	t.Helper()
	opts = append([]kfake.Opt{kfake.NumBrokers(n), kfake.DataDir(t.TempDir())}, opts...)
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatalf("starting kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c, c.ListenAddrs()
}

// Context returns a context cancelled when the test ends or after d.
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// KafkaWithTopics starts a one-broker kfake cluster with every topic of
// topics.yaml created (replication factor 1) and returns its addresses and
// an admin client; both are closed with the test.
func KafkaWithTopics(t testing.TB) ([]string, *kadm.Client) {
	t.Helper()
	_, addrs := Kafka(t, 1)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	adm := kadm.NewClient(cl)
	topo, err := topology.Load()
	if err != nil {
		t.Fatalf("loading topics.yaml: %v", err)
	}
	ctx := Context(t, 30*time.Second)
	for _, tp := range topo.Topics {
		if _, err := adm.CreateTopic(ctx, tp.Partitions, 1, nil, tp.Name); err != nil {
			t.Fatalf("creating topic %s: %v", tp.Name, err)
		}
	}
	return addrs, adm
}
