//! A throwaway three-node Redis Cluster, for the tests of cluster support: started by the
//! test on free loopback ports in a directory of its own, stopped when dropped. The
//! machine's own Redis is never touched.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// Three primaries covering all 16384 slots, no replicas.
#[derive(Debug)]
pub struct RedisCluster {
    dir: PathBuf,
    ports: Vec<u16>,
}

fn free_port() -> u16 {
    // Cluster nodes also listen on port + 10000 (the bus): pick ports that leave it free.
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        if port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl RedisCluster {
    /// Starts the nodes and joins them into a cluster; returns once it says `ok`.
    pub fn start() -> Self {
        let dir = std::env::temp_dir()
            .join("larder-tests")
            .join(format!("redis-cluster-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("cluster directory");
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let cluster = Self { dir, ports };
        for port in &cluster.ports {
            cluster.start_node(*port);
        }
        let nodes: Vec<String> = cluster
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli --cluster create runs");
        assert!(
            created.status.success(),
            "cluster create failed: {}",
            String::from_utf8_lossy(&created.stdout)
        );
        cluster.wait_until_ok();
        cluster
    }

    fn start_node(&self, port: u16) {
        let status = Command::new("redis-server")
            .args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes"])
            .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
            .args(["--cluster-node-timeout", "2000"])
            // Without replicas, a node that is down would otherwise stop the whole cluster.
            .args(["--cluster-require-full-coverage", "no"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--dir", &self.dir.to_string_lossy()])
            .args(["--pidfile", &self.pidfile(port).to_string_lossy()])
            .args(["--logfile", &format!("redis-{port}.log")])
            .args(["--daemonize", "yes"])
            .status()
            .expect("redis-server runs");
        assert!(status.success(), "redis-server on {port} did not start");
        let deadline = Instant::now() + Duration::from_secs(10);
        while cli(port, &["PING"]).trim() != "PONG" {
            assert!(Instant::now() < deadline, "node {port} never answered");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn pidfile(&self, port: u16) -> PathBuf {
        self.dir.join(format!("redis-{port}.pid"))
    }

    /// Waits until every node says the cluster is `ok` (all slots served).
    pub fn wait_until_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let all_ok = self
                .ports
                .iter()
                .all(|p| cli(*p, &["CLUSTER", "INFO"]).contains("cluster_state:ok"));
            if all_ok {
                return;
            }
            assert!(Instant::now() < deadline, "the cluster never became ok");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `redis://` URLs of the nodes, as `LARDER_REDIS_CLUSTER_URLS` takes them.
    pub fn urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect()
    }

    /// How many keys each node holds.
    pub fn keys_per_node(&self) -> Vec<u64> {
        self.ports
            .iter()
            .map(|p| cli(*p, &["DBSIZE"]).trim().parse().unwrap_or(0))
            .collect()
    }

    /// Stops node `n` (it loses its data, not its place in the cluster).
    pub fn stop_node(&self, n: usize) {
        let port = self.ports[n];
        let _ = cli(port, &["SHUTDOWN", "NOSAVE"]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            assert!(Instant::now() < deadline, "node {port} did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts node `n` again with its cluster configuration; returns once the cluster is ok.
    pub fn restart_node(&self, n: usize) {
        self.start_node(self.ports[n]);
        self.wait_until_ok();
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for port in &self.ports {
            let _ = cli(*port, &["SHUTDOWN", "NOSAVE"]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
