//! The `keel` binary's library: configuration, the demo seed, the transport, and running the
//! platform (one node and the HTTP gateway in one process, over the in-process bus or NATS).

pub mod config;
mod owners;
pub mod seed;
pub mod transport;

use anyhow::Context;
use config::{ClusterCommand, Command, Config, Role};
use keel_cluster::membership::{self as cluster, Membership};
use keel_cluster::takeover;
use keel_gateway::Gateway;
use keel_runtime::Node;
use std::sync::Arc;

/// Runs the platform until Ctrl-C or SIGTERM. Must run inside an actix system.
pub async fn run(config: Config) -> anyhow::Result<()> {
    match &config.command {
        Some(Command::Cluster(command)) => return cluster_command(&config, command).await,
        Some(Command::Compact) => return compact(&config),
        None => {}
    }
    if config.role == Role::Gateway {
        return run_gateway(&config).await;
    }
    let settings = match &config.nats_url {
        Some(_) => Some(cluster_settings(&config)?),
        None => None,
    };
    let origin = settings.as_ref().map(|s| s.node.as_str());
    let transport = transport::connect(&config, origin).await?;
    let bus = transport.bus;
    let membership = match (transport.nats, &settings) {
        (Some(client), Some(settings)) => Some(Arc::new(Membership::join(client, settings).await?)),
        _ => None,
    };
    // Before anything is written: whether the local copy may be kept (see takeover.rs).
    let clean_stop = match &membership {
        Some(_) => takeover::take_clean_stop(&config.data_dir)?,
        None => None,
    };
    let mut options = config.node_options();
    options.replica = membership.as_ref().map(|m| m.replica());
    options.cluster = membership.as_ref().map(|m| m.sharding());
    let node = Arc::new(Node::start(&options, Arc::clone(&bus)).context("starting the node")?);
    {
        let (node, membership) = (Arc::clone(&node), membership.clone());
        keel_telemetry::metrics::sampled(Box::new(move || {
            let mut samples = keel_runtime::metrics::samples(&node.stats());
            if let Some(m) = &membership {
                samples.extend(m.samples());
            }
            samples
        }));
    }
    let gateway = Gateway::new(Arc::clone(&bus), {
        // Not ready while the bus is down (requests could not reach the node) or while
        // the node has yet to take the partitions the cluster gives it.
        let (node, bus, membership) = (Arc::clone(&node), Arc::clone(&bus), membership.clone());
        Arc::new(move || {
            node.is_ready()
                && bus.is_connected()
                && membership.as_ref().is_none_or(|m| m.is_ready())
        })
    })
    .with_status({
        let membership = membership.clone();
        Arc::new(move || match &membership {
            Some(m) => m.status(),
            None => serde_json::json!({ "mode": "embedded" }),
        })
    });
    let gateway = match &membership {
        Some(m) => {
            let sharding = m.sharding();
            gateway.with_owner_routing(owners::by(move |key| sharding.partition_of(key)))
        }
        None => gateway,
    }
    .with_timeout(std::time::Duration::from_secs(
        config.request_timeout_secs.max(1),
    ));
    // HTTP first, so /healthz answers (and /readyz says "starting") during recovery.
    let server = http_server(&config, gateway)?;
    let handle = server.handle();
    let serving = actix_rt::spawn(server);

    if let Some(m) = &membership {
        m.prepare(node.store(), clean_stop.as_ref())
            .await
            .context("restoring the catalog")?;
        node.reload_catalog()
            .context("reading the restored catalog")?;
        m.follow_catalog(&node);
        let mut fenced = m.fenced();
        actix_rt::spawn(async move {
            if let Ok(reason) = fenced.wait_for(Option::is_some).await {
                cluster::fenced_out(reason.as_deref().unwrap_or("the changelog refused a write"));
            }
        });
    }
    let recovery = node.recover().await.context("recovering")?;
    tracing::info!(?recovery, "recovered");
    node.serve(&bus).await.context("serving the API")?;
    if let Some(m) = &membership {
        // Partitions come (and go) from here on, as the cluster balances them.
        actix_rt::spawn(Arc::clone(m).run(Arc::clone(&node)));
    }
    if config.seed_demo && node.catalog().locations().is_empty() {
        seed::demo(&bus).await?;
        tracing::info!("seeded the demo catalog");
    }
    banner(&config);
    match serving.await {
        Ok(result) => result.context("the HTTP server failed")?,
        Err(e) => anyhow::bail!("the HTTP server task failed: {e}"),
    }
    drop(handle);
    // Hand every partition off first: the others serve them while this node stops.
    if let Some(m) = &membership {
        m.leave(&node).await;
    }
    node.shutdown().await.context("shutting down")?;
    // Only now that everything is synced: a restart on this disk keeps what it holds.
    if let Some(m) = &membership {
        m.record_clean_stop(&config.data_dir);
    }
    tracing::info!("stopped cleanly");
    Ok(())
}

/// The HTTP server of `gateway` on the configured address (stops on SIGTERM or Ctrl-C, giving
/// requests in flight 10 s).
fn http_server(config: &Config, gateway: Gateway) -> anyhow::Result<actix_web::dev::Server> {
    let mut server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .wrap_fn(keel_gateway::traced)
            .configure(keel_gateway::configure(gateway.clone()))
    })
    .bind(config.http_addr)
    .with_context(|| format!("binding {}", config.http_addr))?;
    if let Some(workers) = config.http_workers {
        server = server.workers(workers.max(1));
    }
    Ok(server.shutdown_timeout(10).run())
}

/// `--role gateway`: only the HTTP gateway, forwarding to the nodes over NATS.
async fn run_gateway(config: &Config) -> anyhow::Result<()> {
    anyhow::ensure!(
        config.nats_url.is_some(),
        "--role gateway forwards to nodes over NATS: give --nats URL (or KEEL_NATS_URL)"
    );
    let transport = transport::connect(config, None).await?;
    let bus = transport.bus;
    // Ready once connected and, on NATS, once it knows the cluster's partitioning: before a
    // node created the cluster, nothing could answer its requests anyway.
    let (owners, partitioning_known) = match transport.nats {
        Some(client) => {
            let (owners, known) = owners::observed(client);
            (Some(owners), known)
        }
        None => (None, Arc::new(|| true) as owners::Known),
    };
    {
        let bus = Arc::clone(&bus);
        keel_telemetry::metrics::sampled(Box::new(move || {
            keel_runtime::metrics::bus_samples(&bus.counters())
        }));
    }
    let gateway = Gateway::new(Arc::clone(&bus), {
        let bus = Arc::clone(&bus);
        Arc::new(move || bus.is_connected() && partitioning_known())
    })
    .with_status(Arc::new(|| serde_json::json!({ "mode": "gateway" })));
    let gateway = match owners {
        Some(owners) => gateway.with_owner_routing(owners),
        None => gateway,
    }
    .with_timeout(std::time::Duration::from_secs(
        config.request_timeout_secs.max(1),
    ));
    println!("keel gateway is ready on http://{}", config.http_addr);
    http_server(config, gateway)?
        .await
        .context("the HTTP server failed")
}

/// Which process this is, for the spans it exports (`service.instance.id`): a cluster
/// member's node id, else the host and process id.
pub fn instance_id(config: &Config) -> String {
    let member =
        config.command.is_none() && config.role != Role::Gateway && config.nats_url.is_some();
    let node = match &config.node_id {
        Some(id) if member => Some(id.clone()),
        _ if member => cluster::stored_node_id(&config.data_dir).ok(),
        _ => None,
    };
    node.unwrap_or_else(|| {
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_else(|_| "keel".into());
        format!("{}-{}", host.trim(), std::process::id())
    })
}

/// How this node joins its cluster, from its flags.
fn cluster_settings(config: &Config) -> anyhow::Result<cluster::Settings> {
    let node = match &config.node_id {
        Some(id) => id.clone(),
        None => cluster::stored_node_id(&config.data_dir)?,
    };
    Ok(cluster::Settings {
        node,
        partitions: config.partitions,
        lease_ttl: std::time::Duration::from_secs(config.lease_secs.max(1)),
        address: format!("http://{}", config.http_addr),
        replicas: config.replicas.max(1),
        snapshots: keel_cluster::changelog::SnapshotPolicy {
            min_bytes: config.snapshot_bytes.max(1),
            ..keel_cluster::changelog::SnapshotPolicy::default()
        },
    })
}

/// `keel cluster …`: talks to the cluster's coordination buckets on NATS.
async fn cluster_command(config: &Config, command: &ClusterCommand) -> anyhow::Result<()> {
    let url = config
        .nats_url
        .as_deref()
        .context("keel cluster needs --nats URL (or KEEL_NATS_URL)")?;
    let options = keel_bus_nats::connect_options(url, config.nats_credentials.as_deref()).await?;
    let client = options
        .connect(url)
        .await
        .with_context(|| format!("connecting to NATS at {url}"))?;
    let js = async_nats::jetstream::new(client);
    let coordinator = keel_cluster::Coordinator::observe(&js).await?;
    match command {
        ClusterCommand::Status { json } => {
            let status = keel_cluster::ClusterStatus::read(&coordinator).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print!("{}", status.render());
            }
        }
    }
    Ok(())
}

/// `keel compact`: compacts the node's store (it must not be running).
fn compact(config: &Config) -> anyhow::Result<()> {
    let options = keel_store::Options {
        cache_capacity: config.node_options().cache_capacity,
        compression: config.store_compression,
        ..keel_store::Options::default()
    };
    let report = keel_store::compact(&config.data_dir, &options)
        .with_context(|| format!("compacting {}", config.data_dir.display()))?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

fn banner(config: &Config) {
    let base = format!("http://{}", config.http_addr);
    println!(
        "keel is ready on {base} (data in {})",
        config.data_dir.display()
    );
    println!("  try:  curl -s {base}/v1/locations");
    println!("        curl -s {base}/v1/inventory/SKU-0001");
    println!(
        "        curl -s -XPOST {base}/v1/orders -d '{{\"id\":\"o-1\",\"channel\":\"web\",\"lines\":[{{\"sku\":\"SKU-0001\",\"quantity\":2}}],\"ship_to\":{{\"region\":\"east\"}}}}'"
    );
    println!("        curl -s {base}/v1/orders/o-1");
    println!("  docs: docs/http-api.md   stop: Ctrl-C");
}
