package memory

import (
	"fmt"

	"github.com/promoflow/promoflow/sinks/mysql"
)

// Config lays out the in-memory shards like the MySQL sink's.
type Config struct {
	// Databases is the number of shard databases. Default 2, as for MySQL.
	Databases int `yaml:"databases"`
	// TablesPerDatabase is the number of tables in each. Default 4.
	TablesPerDatabase int `yaml:"tables_per_database"`
}

// FromMySQL returns the layout of the MySQL sink configured by c, so the
// stand-in routes every user as that sink would.
func FromMySQL(c mysql.Config) Config {
	c.Defaults()
	return Config{Databases: c.NumDatabases(), TablesPerDatabase: c.TablesPerDatabase}
}

// Defaults fills every unset field with its default.
func (c *Config) Defaults() {
	if c.Databases == 0 {
		c.Databases = mysql.DefaultDatabases
	}
	if c.TablesPerDatabase == 0 {
		c.TablesPerDatabase = mysql.DefaultTablesPerDatabase
	}
}

// Validate reports the first problem with c, which must have had Defaults
// applied.
func (c Config) Validate() error {
	if c.Databases < 1 || c.Databases > mysql.MaxShards {
		return fmt.Errorf("databases must be between 1 and %d, got %d", mysql.MaxShards, c.Databases)
	}
	if c.TablesPerDatabase < 1 || c.TablesPerDatabase > mysql.MaxShards {
		return fmt.Errorf("tables_per_database must be between 1 and %d, got %d", mysql.MaxShards, c.TablesPerDatabase)
	}
	return nil
}

// Route returns the shard of userID's rows, as mysql.Config.Route does for
// the same layout.
func (c Config) Route(userID string) (db, table int) {
	return c.mysql().Route(userID)
}

func (c Config) mysql() mysql.Config {
	return mysql.Config{Databases: c.Databases, TablesPerDatabase: c.TablesPerDatabase}
}
