//! Work shared by leases in a real PostgreSQL (`src/fleet.rs`), one server for
//! the file: three instances taking 60 units at once get each exactly once per
//! tick and never the same one together; a crashed holder's units are taken
//! over when its leases run out, and it learns it lost them; what must happen
//! once happens once; a wrong password and a server that is down are clear
//! errors.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::postgres::{PASSWORD, Postgres};
use tillsyn_config::StoreConfig as FleetConfig;
use tillsyn_core::secret::Secret;
use tillsyn_store::fleet::Fleet;

/// One server for the tests of this file, each in a database of its own.
fn server() -> &'static Postgres {
    static SERVER: OnceLock<Postgres> = OnceLock::new();
    SERVER.get_or_init(Postgres::start)
}

/// A fresh database on the shared server, and its config.
fn database(name: &str) -> FleetConfig {
    let server = server();
    server.psql(&format!("CREATE DATABASE {name}"));
    FleetConfig {
        url: format!(
            "postgres://{}@127.0.0.1:{}/{name}",
            common::postgres::USER,
            server.port
        ),
        password: Some(Secret::new(PASSWORD.as_bytes().to_vec())),
        ca_file: None,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime")
}

fn units(count: usize) -> Vec<String> {
    (0..count).map(|n| format!("mail/account-{n:02}")).collect()
}

#[test]
fn three_instances_take_every_unit_once_per_tick_and_never_together() {
    let config = database("fleet_share");
    runtime().block_on(async {
        let all = units(60);
        // Who holds what right now, and every (tick, unit) taken.
        let held: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
        let taken: Arc<Mutex<Vec<(i64, String, String)>>> = Arc::default();
        for tick in [1_000, 2_000] {
            let mut workers = Vec::new();
            for instance in ["a", "b", "c"] {
                let fleet = Fleet::connect(&config, instance).await.expect("connect");
                fleet.register("mail", &all).await.expect("register");
                let (held, taken) = (held.clone(), taken.clone());
                workers.push(tokio::spawn(async move {
                    loop {
                        let leases = fleet
                            .claim("mail", tick, Duration::from_secs(60), 2)
                            .await
                            .expect("claim");
                        if leases.is_empty() {
                            break;
                        }
                        for lease in &leases {
                            {
                                let mut held = held.lock().expect("lock");
                                assert!(
                                    held.insert(lease.unit.clone(), instance.into()).is_none(),
                                    "{} held twice at once",
                                    lease.unit
                                );
                            }
                            taken.lock().expect("lock").push((
                                tick,
                                lease.unit.clone(),
                                instance.into(),
                            ));
                        }
                        assert_eq!(fleet.leased().await.expect("leased"), leases.len() as u64);
                        // The work.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        for lease in &leases {
                            held.lock().expect("lock").remove(&lease.unit);
                            assert!(fleet.finish(lease).await.expect("finish"));
                        }
                    }
                }));
            }
            for worker in workers {
                worker.await.expect("worker");
            }
        }
        let taken = taken.lock().expect("lock").clone();
        for tick in [1_000, 2_000] {
            let mut per_unit: BTreeMap<&str, usize> = BTreeMap::new();
            for (_, unit, _) in taken.iter().filter(|(t, _, _)| *t == tick) {
                *per_unit.entry(unit).or_insert(0) += 1;
            }
            assert_eq!(per_unit.len(), 60, "tick {tick}: every unit");
            assert!(
                per_unit.values().all(|count| *count == 1),
                "tick {tick}: once each: {per_unit:?}"
            );
        }
        // The work was spread: each instance took some.
        for instance in ["a", "b", "c"] {
            assert!(
                taken.iter().any(|(_, _, by)| by == instance),
                "{instance} took nothing"
            );
        }
        // A tick already done offers nothing again.
        let late = Fleet::connect(&config, "d").await.expect("connect");
        assert!(
            late.claim("mail", 2_000, Duration::from_secs(60), 100)
                .await
                .expect("claim")
                .is_empty()
        );
    });
}

#[test]
fn a_crashed_holders_units_are_taken_over_when_the_lease_runs_out() {
    let config = database("fleet_crash");
    runtime().block_on(async {
        let crashed = Fleet::connect(&config, "crashed").await.expect("connect");
        let other = Fleet::connect(&config, "other").await.expect("connect");
        crashed.register("mail", &units(3)).await.expect("register");
        let lease = Duration::from_secs(2);
        let held = crashed.claim("mail", 7, lease, 3).await.expect("claim");
        assert_eq!(held.len(), 3);
        // While the leases run, nobody else gets the units.
        assert!(
            other
                .claim("mail", 7, lease, 3)
                .await
                .expect("claim")
                .is_empty()
        );
        // Renewed, they stay.
        assert!(crashed.renew(&held[0].unit, lease).await.expect("renew"));
        // The holder dies: nothing renews. Past the lease, the other takes over.
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        let taken = other.claim("mail", 7, lease, 3).await.expect("claim");
        assert_eq!(
            taken.iter().map(|l| l.unit.as_str()).collect::<Vec<_>>(),
            held.iter().map(|l| l.unit.as_str()).collect::<Vec<_>>()
        );
        // The old holder, if it comes back, learns it lost them: it may not
        // renew, finish or release them.
        assert!(!crashed.renew(&held[0].unit, lease).await.expect("renew"));
        assert!(!crashed.finish(&held[1]).await.expect("finish"));
        crashed.release(&held[2].unit).await.expect("release");
        assert_eq!(other.leased().await.expect("leased"), 3);
        // A released unit (a failed scan) can be taken again for the same tick.
        other.release(&taken[0].unit).await.expect("release");
        let again = crashed.claim("mail", 7, lease, 3).await.expect("claim");
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].unit, taken[0].unit);
    });
}

/// Instances started at the same moment on a new database all join: the
/// tables are made once, under a lock (the catalog races otherwise; found by
/// the fleet benchmark).
#[test]
fn instances_starting_together_on_a_new_database_all_join() {
    for attempt in 0..5 {
        let config = database(&format!("fleet_together_{attempt}"));
        runtime().block_on(async {
            let joining: Vec<_> = (0..4)
                .map(|n| {
                    let config = config.clone();
                    tokio::spawn(async move { Fleet::connect(&config, &format!("i{n}")).await })
                })
                .collect();
            for joined in joining {
                if let Err(error) = joined.await.expect("task") {
                    panic!("an instance could not join: {error}");
                }
            }
        });
    }
}

#[test]
fn what_must_happen_once_happens_once() {
    let config = database("fleet_once");
    runtime().block_on(async {
        let mut claims = Vec::new();
        for instance in ["a", "b", "c"] {
            let fleet = Fleet::connect(&config, instance).await.expect("connect");
            claims.push(tokio::spawn(async move {
                fleet.claim_once("report:2026-11").await.expect("claim")
            }));
        }
        let mut won = 0;
        for claim in claims {
            if claim.await.expect("claim") {
                won += 1;
            }
        }
        assert_eq!(won, 1);
        // Another key is another claim.
        let fleet = Fleet::connect(&config, "a").await.expect("connect");
        assert!(fleet.claim_once("digests:2026-11").await.expect("claim"));
        assert!(!fleet.claim_once("digests:2026-11").await.expect("claim"));
    });
}

#[test]
fn a_wrong_password_and_a_server_down_are_clear_errors() {
    let mut config = database("fleet_errors");
    runtime().block_on(async {
        config.password = Some(Secret::new(b"not-the-password".to_vec()));
        let error = match Fleet::connect(&config, "a").await {
            Ok(_) => panic!("a wrong password connected"),
            Err(error) => error.to_string(),
        };
        assert!(
            error.contains("password authentication failed") && !error.contains("not-the-password"),
            "{error}"
        );
        let down = FleetConfig {
            url: format!(
                "postgres://tillsyn@127.0.0.1:{}/x",
                common::process::free_port()
            ),
            password: None,
            ca_file: None,
        };
        let error = match Fleet::connect(&down, "a").await {
            Ok(_) => panic!("connected to nothing"),
            Err(error) => error.to_string(),
        };
        assert!(error.contains("PostgreSQL at 127.0.0.1:"), "{error}");
    });
}
