//! Several tillsyn instances sharing the work through one PostgreSQL (issue
//! 16), the way scanner fleets of this kind do it: no message bus, a table of
//! leases in the database they share.
//!
//! - **Work units.** A unit is a source, or a shard of one (an IMAP account,
//!   a share subtree, an LDAP base), named by the config, so every instance
//!   with the same config registers the same units ([`Fleet::register`]).
//! - **Leases.** An instance takes due units with `SELECT … FOR UPDATE SKIP
//!   LOCKED` ([`Fleet::claim`]): a unit another instance is taking right now is
//!   skipped, not waited for, and a unit under a lease that has not run out is
//!   not offered. The lease runs out at `leased_until`; the holder renews it
//!   while the work runs ([`Fleet::renew`], which says when the lease was lost)
//!   and gives it up when done ([`Fleet::finish`]). A crashed instance renews
//!   nothing, so its units are taken over once their leases run out. A unit is
//!   never held by two instances at once.
//! - **Once per tick.** A unit finished for a schedule tick is not offered for
//!   that tick again, whichever instance finished it: schedules keep meaning
//!   "once per tick per unit" across the fleet.
//! - **Once of everything.** What must happen once (a month's report, its
//!   digests, judging conflicts) is claimed by key ([`Fleet::claim_once`]): the
//!   first instance to insert the key does it.
//!
//! Times are the database's (`now()`), so the instances' clocks need not agree.
//! This module holds the coordination only; the findings store on PostgreSQL
//! is the other half of the issue.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};

use tillsyn_config::StoreConfig;

/// Why the fleet's table could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The URL does not parse.
    #[error("store url: {0}")]
    Url(String),
    /// The database could not be reached or refused the login.
    #[error("PostgreSQL at {place}: {message}")]
    Connect {
        /// Host and port, never the password.
        place: String,
        /// What the server or the network said.
        message: String,
    },
    /// A statement failed.
    #[error("PostgreSQL: {0}")]
    Query(String),
}

impl From<tokio_postgres::Error> for FleetError {
    fn from(error: tokio_postgres::Error) -> FleetError {
        FleetError::Query(crate::db::postgres_message(&error))
    }
}

/// A unit this instance holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The unit's name.
    pub unit: String,
    /// The schedule tick it is held for (Unix seconds).
    pub tick: i64,
}

/// One instance's handle on the shared database.
pub struct Fleet {
    pool: Pool,
    /// This instance's name in the lease table (host and process).
    instance: String,
    place: String,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS fleet_units (
    unit          TEXT        PRIMARY KEY,
    source        TEXT        NOT NULL,
    holder        TEXT,
    leased_until  TIMESTAMPTZ,
    held_tick     BIGINT,
    done_tick     BIGINT,
    done_at       TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS fleet_once (
    key        TEXT        PRIMARY KEY,
    holder     TEXT        NOT NULL,
    claimed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
";

impl Fleet {
    /// Connect as `instance` and make sure the tables are there.
    pub async fn connect(config: &StoreConfig, instance: &str) -> Result<Fleet, FleetError> {
        let (pg, tls) =
            crate::db::prepare(config).map_err(|error| FleetError::Url(error.to_string()))?;
        let place = pg
            .get_hosts()
            .iter()
            .map(|host| match host {
                tokio_postgres::config::Host::Tcp(name) => name.clone(),
                tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
            })
            .collect::<Vec<_>>()
            .join(",")
            + &pg
                .get_ports()
                .first()
                .map_or_else(String::new, |port| format!(":{port}"));
        let manager = Manager::from_config(
            pg,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(4)
            .build()
            .map_err(|error| FleetError::Url(error.to_string()))?;
        let fleet = Fleet {
            pool,
            instance: instance.to_owned(),
            place,
        };
        let mut client = fleet.client().await?;
        // Instances starting together: one makes the tables, under a lock
        // (CREATE TABLE IF NOT EXISTS alone races in PostgreSQL's catalog).
        let transaction = client.transaction().await?;
        transaction
            .batch_execute(&format!("SELECT pg_advisory_xact_lock(7353324);\n{SCHEMA}"))
            .await?;
        transaction.commit().await?;
        Ok(fleet)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, FleetError> {
        self.pool.get().await.map_err(|error| FleetError::Connect {
            place: self.place.clone(),
            message: match error {
                deadpool_postgres::PoolError::Backend(error) => crate::db::postgres_message(&error),
                other => other.to_string(),
            },
        })
    }

    /// This instance's name.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Make `units` the units of `source`: each has its row (instances with
    /// the same config register the same ones; a unit already there is left
    /// as it is), and the source's units no longer configured go.
    pub async fn register(&self, source: &str, units: &[String]) -> Result<(), FleetError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        transaction
            .execute(
                "INSERT INTO fleet_units (unit, source) SELECT unnest($1::text[]), $2
                 ON CONFLICT (unit) DO NOTHING",
                &[&units, &source],
            )
            .await?;
        transaction
            .execute(
                "DELETE FROM fleet_units WHERE source = $1 AND NOT (unit = ANY($2))",
                &[&source, &units],
            )
            .await?;
        transaction.commit().await?;
        Ok(())
    }

    /// How many units of `source` are not finished for `tick` yet (leased or
    /// not).
    pub async fn unfinished(&self, source: &str, tick: i64) -> Result<u64, FleetError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT count(*) FROM fleet_units
                 WHERE source = $1 AND (done_tick IS NULL OR done_tick < $2)",
                &[&source, &tick],
            )
            .await?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }

    /// Take up to `limit` units of `source` due for `tick` (not finished for
    /// it, not under a lease that has not run out), leased for `lease`. Units
    /// another instance is taking at this moment are skipped.
    pub async fn claim(
        &self,
        source: &str,
        tick: i64,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Lease>, FleetError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        let rows = transaction
            .query(
                "SELECT unit FROM fleet_units
                 WHERE source = $3 AND (done_tick IS NULL OR done_tick < $1)
                   AND (leased_until IS NULL OR leased_until < now())
                 ORDER BY unit
                 LIMIT $2
                 FOR UPDATE SKIP LOCKED",
                &[&tick, &(limit as i64), &source],
            )
            .await?;
        let units: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
        if !units.is_empty() {
            transaction
                .execute(
                    "UPDATE fleet_units
                     SET holder = $1, held_tick = $2,
                         leased_until = now() + make_interval(secs => $3)
                     WHERE unit = ANY($4)",
                    &[&self.instance, &tick, &lease.as_secs_f64(), &units],
                )
                .await?;
        }
        transaction.commit().await?;
        Ok(units.into_iter().map(|unit| Lease { unit, tick }).collect())
    }

    /// Extend the lease on `unit` by `lease` from now. `false` when this
    /// instance no longer holds it (it ran out and another took it): the work
    /// must stop.
    pub async fn renew(&self, unit: &str, lease: Duration) -> Result<bool, FleetError> {
        let client = self.client().await?;
        let renewed = client
            .execute(
                "UPDATE fleet_units SET leased_until = now() + make_interval(secs => $1)
                 WHERE unit = $2 AND holder = $3 AND leased_until >= now()",
                &[&lease.as_secs_f64(), &unit, &self.instance],
            )
            .await?;
        Ok(renewed == 1)
    }

    /// `lease` is done: its unit is finished for its tick and free. `false`
    /// when this instance no longer held it.
    pub async fn finish(&self, lease: &Lease) -> Result<bool, FleetError> {
        let client = self.client().await?;
        let finished = client
            .execute(
                "UPDATE fleet_units
                 SET done_tick = GREATEST(coalesce(done_tick, $1), $1), done_at = now(),
                     holder = NULL, leased_until = NULL, held_tick = NULL
                 WHERE unit = $2 AND holder = $3",
                &[&lease.tick, &lease.unit, &self.instance],
            )
            .await?;
        Ok(finished == 1)
    }

    /// Give `unit` up without finishing it (a failed scan): another instance
    /// may take it for the same tick.
    pub async fn release(&self, unit: &str) -> Result<(), FleetError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE fleet_units SET holder = NULL, leased_until = NULL, held_tick = NULL
                 WHERE unit = $1 AND holder = $2",
                &[&unit, &self.instance],
            )
            .await?;
        Ok(())
    }

    /// How many units this instance holds now (`tillsyn_instance_units_leased`).
    pub async fn leased(&self) -> Result<u64, FleetError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT count(*) FROM fleet_units WHERE holder = $1 AND leased_until >= now()",
                &[&self.instance],
            )
            .await?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }

    /// Claim what must happen once (`key`, e.g. `report:2026-11`): `true` for
    /// the one instance that gets it first, `false` for every other.
    pub async fn claim_once(&self, key: &str) -> Result<bool, FleetError> {
        let client = self.client().await?;
        let inserted = client
            .execute(
                "INSERT INTO fleet_once (key, holder) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                &[&key, &self.instance],
            )
            .await?;
        Ok(inserted == 1)
    }
}
