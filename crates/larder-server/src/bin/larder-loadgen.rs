//! `larder-loadgen`: sends a corpus of webhook deliveries (one JSON object a line:
//! `{"path", "content_type", "body"}`) to a running Larder, each exactly once, over a fixed
//! number of keep-alive connections, and prints what came back: answers per second,
//! latency percentiles, statuses, and (with `--pid`) the server's CPU time per request.
//!
//! It is the low-overhead generator of `load-tests/`: the corpus is made beforehand, so
//! sending costs a few microseconds a request, on cores it shares with the server. With
//! `--rate`, requests are sent on a fixed schedule (open loop) and each latency counts from
//! when its request was due, so a slow server is not hidden by a waiting generator.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "larder-loadgen",
    about = "Send a corpus of deliveries to Larder, once each"
)]
struct Args {
    /// Larder's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    base: String,
    /// The corpus: one `{"path", "content_type", "body"}` object a line.
    #[arg(long)]
    corpus: PathBuf,
    /// Connections (and requests in flight) at once.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Requests a second, on a fixed schedule; unset: as fast as answers come.
    #[arg(long)]
    rate: Option<f64>,
    /// Larder's process id, to report its CPU time per request.
    #[arg(long)]
    pid: Option<u32>,
    /// Where to write the summary as JSON (it is printed too).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, serde::Deserialize)]
struct Line {
    path: String,
    content_type: String,
    body: String,
}

struct Request {
    url: String,
    content_type: String,
    body: bytes::Bytes,
}

/// CPU seconds (user and system) a process has used so far.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = stat.rsplit_once(')').context("a /proc stat line")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    Ok(ticks / 100.0)
}

fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * q) as usize).min(sorted.len() - 1);
    sorted[i] as f64 / 1000.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.corpus)
        .with_context(|| format!("reading {}", args.corpus.display()))?;
    let base = args.base.trim_end_matches('/').to_owned();
    let requests: Vec<Request> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let line: Line = serde_json::from_str(l).context("a corpus line")?;
            Ok(Request {
                url: format!("{base}{}", line.path),
                content_type: line.content_type,
                body: bytes::Bytes::from(line.body),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let requests = Arc::new(requests);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()?;
    let next = Arc::new(AtomicUsize::new(0));
    let cpu_before = args.pid.map(cpu_seconds).transpose()?;
    let started = Instant::now();
    let workers: Vec<_> = (0..args.connections.max(1))
        .map(|_| {
            let (client, requests, next) = (client.clone(), requests.clone(), next.clone());
            let rate = args.rate;
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(r) = requests.get(i) else { break };
                    let due = match rate {
                        Some(rate) => {
                            let due = started + Duration::from_secs_f64(i as f64 / rate);
                            tokio::time::sleep_until(due.into()).await;
                            due
                        }
                        None => Instant::now(),
                    };
                    let answer = client
                        .post(&r.url)
                        .header("content-type", &r.content_type)
                        .body(r.body.clone())
                        .send()
                        .await;
                    let status = match answer {
                        Ok(resp) => {
                            let status = resp.status().as_u16().to_string();
                            // Read the answer whole: the request is done when it is.
                            let _ = resp.bytes().await;
                            status
                        }
                        Err(err) if err.is_timeout() => "timeout".to_owned(),
                        Err(_) => "error".to_owned(),
                    };
                    latencies.push(u64::try_from(due.elapsed().as_micros()).unwrap_or(u64::MAX));
                    *statuses.entry(status).or_default() += 1;
                }
                (latencies, statuses)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(requests.len());
    let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
    for worker in workers {
        let (l, s) = worker.await?;
        latencies.extend(l);
        for (k, v) in s {
            *statuses.entry(k).or_default() += v;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = match (args.pid, cpu_before) {
        (Some(pid), Some(before)) => Some(cpu_seconds(pid)? - before),
        _ => None,
    };
    latencies.sort_unstable();
    let n = latencies.len();
    let summary = serde_json::json!({
        "requests": n,
        "seconds": seconds,
        "per_second": n as f64 / seconds,
        "p50_ms": percentile(&latencies, 0.50),
        "p99_ms": percentile(&latencies, 0.99),
        "max_ms": percentile(&latencies, 1.0),
        "statuses": statuses,
        "server_cpu_ms_per_request": cpu.map(|c| c * 1000.0 / n.max(1) as f64),
    });
    println!("{summary}");
    if let Some(out) = &args.out {
        std::fs::write(out, serde_json::to_vec_pretty(&summary)?)?;
    }
    Ok(())
}
