//! The cluster deployment files (README.md, "Cluster: deployment") are what they claim: the
//! compose file parses and wires every node to the shared store, its own log volume and the
//! shipped HAProxy config; its node configs load as the daemon loads them and differ only in
//! `node_id`; the Kubernetes manifests build with `kubectl kustomize` (offline) and give each
//! pod the config file named after it. The HAProxy files themselves are run by
//! `tests/cluster_failover.rs` (cluster) and checked here with `haproxy -c`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn deploy(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy").join(p)
}

/// YAML documents of `path` as JSON (Python's yaml: python3-yaml is in the base system).
fn yaml(path: &Path) -> Vec<serde_json::Value> {
    let out = common::python(
        "import json, sys, yaml\nprint(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))",
        &[path.to_str().unwrap()],
    );
    serde_json::from_str(&out).unwrap()
}

#[test]
fn compose_nodes_share_the_store_and_keep_their_own_logs_and_configs_load() {
    let docs = yaml(&deploy("compose/compose.yaml"));
    let c = &docs[0];
    let services = c["services"].as_object().unwrap();
    for s in ["nats", "node1", "node2", "haproxy"] {
        assert!(services.contains_key(s), "service {s}");
    }
    let mut configs = Vec::new();
    for (i, node) in ["node1", "node2"].iter().enumerate() {
        let vols: Vec<&str> = services[*node]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(vols.contains(&"maildata:/var/lib/mailserver"), "{vols:?}");
        assert!(
            vols.contains(&format!("{node}-logs:/var/log/mailserver").as_str()),
            "{vols:?}"
        );
        let ip = services[*node]["networks"]["cluster"]["ipv4_address"]
            .as_str()
            .unwrap();
        assert_eq!(ip, format!("10.0.0.{}", 11 + i));
        let cmd: Vec<&str> = services[*node]["command"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let file = format!("/etc/mailserver/{node}.toml");
        assert_eq!(cmd, ["--config", file.as_str(), "run"]);
        // The config loads as the daemon loads it.
        let path = deploy(&format!("compose/etc/{node}.toml"));
        let cfg =
            mailserver::config::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let cl = cfg.cluster.as_ref().expect("[cluster]");
        assert_eq!(cl.node_id, *node);
        let me = cl.this_node();
        assert_eq!(me.imap.host, ip, "internal listener on the node's address");
        configs.push(std::fs::read_to_string(&path).unwrap());
    }
    // The files differ only in node_id (and the comment naming the node).
    let strip = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| !l.starts_with("node_id") && !l.starts_with("# Node "))
            .map(String::from)
            .collect()
    };
    assert_eq!(strip(&configs[0]), strip(&configs[1]));
    // HAProxy runs the shipped cluster config unchanged, from the nodes' neighbour.
    let h = &services["haproxy"];
    let vols = h["volumes"].as_array().unwrap();
    assert!(
        vols.iter().any(|v| v
            .as_str()
            .unwrap()
            .starts_with("../haproxy/haproxy-cluster.cfg:")),
        "{vols:?}"
    );
    let subnet = c["networks"]["cluster"]["ipam"]["config"][0]["subnet"]
        .as_str()
        .unwrap();
    assert_eq!(subnet, "10.0.0.0/24");
}

#[test]
fn the_cluster_haproxy_config_is_valid() {
    if !common::have("haproxy") {
        common::skipped("haproxy is not installed");
        return;
    }
    let shipped = std::fs::read_to_string(deploy("haproxy/haproxy-cluster.cfg")).unwrap();
    // Without the lines that need root and the system's paths.
    let text: String = shipped
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            !(t.starts_with("user ")
                || t.starts_with("group ")
                || t.starts_with("chroot ")
                || t.starts_with("stats socket ")
                || t == "daemon")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    for needed in [
        "send-proxy-v2",
        "check-send-proxy",
        "tcp-check expect string \"* OK\"",
        "tcp-check expect string \"+OK\"",
        "on-marked-down shutdown-sessions",
        "option redispatch",
        "retries ",
    ] {
        assert!(text.contains(needed), "{needed}");
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("h.cfg");
    std::fs::write(&p, &text).unwrap();
    let out = Command::new("haproxy")
        .arg("-c")
        .arg("-f")
        .arg(&p)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn kubernetes_manifests_build_and_every_pod_takes_its_name_as_node_id() {
    let dir = deploy("kubernetes");
    let docs: Vec<serde_json::Value> = if common::have("kubectl") {
        let out = Command::new("kubectl")
            .arg("kustomize")
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("all.yaml");
        std::fs::write(&p, &out.stdout).unwrap();
        yaml(&p)
    } else {
        let mut v = Vec::new();
        for f in std::fs::read_dir(&dir).unwrap() {
            v.extend(yaml(&f.unwrap().path()));
        }
        v
    };
    let find = |kind: &str, name: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{kind} {name}"))
            .clone()
    };
    let sts = find("StatefulSet", "mailserver");
    let replicas = sts["spec"]["replicas"].as_u64().unwrap();
    let pod = &sts["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(c["args"][1], "/etc/mailserver/mailserver.toml");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    // The config is a directory mount (no subPath: a subPath never sees the ..data swap).
    let mounts = c["volumeMounts"].as_array().unwrap();
    let cfg_mount = mounts.iter().find(|m| m["name"] == "config").unwrap();
    assert_eq!(cfg_mount["mountPath"], "/etc/mailserver");
    assert!(cfg_mount.get("subPath").is_none());
    let vols = pod["volumes"].as_array().unwrap();
    let claim = vols.iter().find(|v| v["name"] == "maildata").unwrap();
    let pvc = find(
        "PersistentVolumeClaim",
        claim["persistentVolumeClaim"]["claimName"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(pvc["spec"]["accessModes"][0], "ReadWriteMany");
    let headless = find("Service", sts["spec"]["serviceName"].as_str().unwrap());
    assert_eq!(headless["spec"]["clusterIP"], "None");
    // One config for every pod: no node_id (the host name, i.e. the pod's name), every
    // replica listed by its stable name under the headless Service. It loads as each pod
    // would load it: with node_id set to a pod's name (the host name here is not one).
    let cm = find("ConfigMap", "mailserver-config");
    let secret = find("Secret", "mailserver-cluster");
    assert!(secret["stringData"]["cluster.secret"].is_string());
    let text = cm["data"]["mailserver.toml"]
        .as_str()
        .expect("mailserver.toml");
    let v: toml::Value = toml::from_str(text).unwrap();
    assert!(
        v["cluster"].get("node_id").is_none(),
        "node_id must come from the pod name"
    );
    let service = headless["metadata"]["name"].as_str().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("users"), "").unwrap();
    std::fs::write(tmp.path().join("cluster.secret"), "0123456789abcdef0123\n").unwrap();
    for i in 0..replicas {
        let name = format!("mailserver-{i}");
        let want = format!("{name}.{service}:11143");
        assert!(
            text.contains(&format!("imap = \"{want}\"")),
            "{name} listed as {want}"
        );
        let as_pod = text
            .replace("[cluster]\n", &format!("[cluster]\nnode_id = \"{name}\"\n"))
            .replace("/etc/mailserver-secret/cluster.secret", "cluster.secret")
            .replace(
                "/var/lib/mailserver",
                &tmp.path().join("data").display().to_string(),
            )
            .replace(
                "/var/log/mailserver",
                &tmp.path().join("log").display().to_string(),
            );
        let path = tmp.path().join("mailserver.toml");
        std::fs::write(&path, as_pod).unwrap();
        let cfg = mailserver::config::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let cl = cfg.cluster.unwrap();
        assert_eq!(cl.node_id, name);
        assert_eq!(cl.nodes.len() as u64, replicas);
        assert_eq!(
            cl.this_node().imap.bind_addr(),
            "0.0.0.0:11143".parse().unwrap()
        );
        assert!(
            cl.is_node_ip("10.244.1.9".parse().unwrap()),
            "the pod network is trusted"
        );
    }
    find("Deployment", "nats");
    find("Deployment", "haproxy");
}
