//! What a stopped node's store holds, by key prefix (`s:` states, `x:` command ids, `p:`
//! ledger pages, …): keys and bytes of keys and values, against the size of its files.
//!
//! `cargo run --release -p keel-store --example census -- DATA_DIR`

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: census DATA_DIR (a store no node is using)")?;
    let db = keel_store::open_raw(std::path::Path::new(&path))?;
    let tree = db.open_tree("keel")?;
    let mut by_prefix: std::collections::BTreeMap<Vec<u8>, (u64, u64)> = Default::default();
    for item in tree.iter() {
        let (key, value) = item?;
        let counts = by_prefix
            .entry(key[..2.min(key.len())].to_vec())
            .or_default();
        counts.0 += 1;
        counts.1 += (key.len() + value.len()) as u64;
    }
    let mib = |bytes: u64| bytes as f64 / 1_048_576.0;
    let mut live = 0;
    for (prefix, (keys, bytes)) in &by_prefix {
        live += bytes;
        let prefix = String::from_utf8_lossy(prefix);
        println!("{prefix:4} {keys:>10} keys {:>10.1} MiB", mib(*bytes));
    }
    let files = db.size_on_disk()?;
    println!(
        "live {:.1} MiB in {:.1} MiB of files",
        mib(live),
        mib(files)
    );
    Ok(())
}
