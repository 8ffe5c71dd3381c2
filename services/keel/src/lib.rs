//! The `keel` binary's library: configuration, the demo seed, the transport, and running the
//! platform (one node and the HTTP gateway in one process, over the in-process bus or NATS).

pub mod config;
pub mod seed;
pub mod transport;

use anyhow::Context;
use config::Config;
use keel_gateway::Gateway;
use keel_runtime::Node;
use std::sync::Arc;

/// Runs the platform until Ctrl-C or SIGTERM. Must run inside an actix system.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let bus = transport::connect(&config).await?;
    let node = Arc::new(
        Node::start(&config.node_options(), Arc::clone(&bus)).context("starting the node")?,
    );
    let gateway = Gateway::new(
        Arc::clone(&bus),
        {
            // Not ready while the bus is down: requests could not reach the node.
            let (node, bus) = (Arc::clone(&node), Arc::clone(&bus));
            Arc::new(move || node.is_ready() && bus.is_connected())
        },
        {
            let node = Arc::clone(&node);
            Arc::new(move || keel_runtime::metrics::render(&node.stats()))
        },
    )
    .with_timeout(std::time::Duration::from_secs(
        config.request_timeout_secs.max(1),
    ));
    // HTTP first, so /healthz answers (and /readyz says "starting") during recovery.
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
    let server = server.shutdown_timeout(10).run();
    let handle = server.handle();
    let serving = actix_rt::spawn(server);

    let recovery = node.recover().await.context("recovering")?;
    tracing::info!(?recovery, "recovered");
    node.serve(&bus).await.context("serving the API")?;
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
    let node = Arc::try_unwrap(node).map_err(|_| anyhow::anyhow!("the node is still in use"))?;
    node.shutdown().await.context("shutting down")?;
    tracing::info!("stopped cleanly");
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
