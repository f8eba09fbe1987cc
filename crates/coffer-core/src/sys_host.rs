//! `sys/host-info`: the host the server runs on, in Vault's shape (CPU,
//! CPU times, disk usage of `/`, host and memory), read from Linux's
//! `/proc` and `statvfs`. Only what the kernel reports is shown; a section
//! that cannot be read is left out, with a warning, as Vault does.

use serde_json::{json, Map, Value};

use crate::util::{now, rfc3339};
use crate::{Response, Result};

/// The kernel's clock ticks per second for `/proc/stat` (USER_HZ), fixed at
/// 100 on every Linux architecture Coffer builds for.
const TICKS_PER_SECOND: f64 = 100.0;

/// Reads one section of the host information (`None`: unreadable).
type Section = fn() -> Option<Value>;

/// Answers `GET sys/host-info`.
pub(crate) fn handle() -> Result<Response> {
    let mut data = Map::new();
    let mut warnings = Vec::new();
    let sections: [(&str, Section); 5] = [
        ("cpu", cpu),
        ("cpu_times", cpu_times),
        ("disk", disk),
        ("host", host),
        ("memory", memory),
    ];
    for (name, read) in sections {
        match read() {
            Some(v) => {
                data.insert(name.into(), v);
            }
            None => warnings.push(format!("could not read the host's {name} information")),
        }
    }
    data.insert("timestamp".into(), json!(rfc3339(&now())));
    let mut resp = Response::data(Value::Object(data));
    resp.warnings = warnings;
    Ok(resp)
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// One entry per logical CPU from `/proc/cpuinfo`.
fn cpu() -> Option<Value> {
    let text = read("/proc/cpuinfo")?;
    let mut cpus = Vec::new();
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let field = |name: &str| {
            block.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == name).then(|| v.trim().to_string())
            })
        };
        let num = |name: &str| field(name).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
        let cache_kb = field("cache size")
            .and_then(|v| v.split_whitespace().next()?.parse::<i64>().ok())
            .unwrap_or(0);
        cpus.push(json!({
            "cpu": num("processor"),
            "vendorId": field("vendor_id").unwrap_or_default(),
            "family": field("cpu family").unwrap_or_default(),
            "model": field("model").unwrap_or_default(),
            "stepping": num("stepping"),
            "physicalId": field("physical id").unwrap_or_default(),
            "coreId": field("core id").unwrap_or_default(),
            "cores": 1,
            "modelName": field("model name").unwrap_or_default(),
            "mhz": field("cpu MHz").and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0),
            "cacheSize": cache_kb,
            "flags": field("flags").map(|f| f.split_whitespace().map(str::to_string).collect::<Vec<_>>()).unwrap_or_default(),
            "microcode": field("microcode").unwrap_or_default(),
        }));
    }
    (!cpus.is_empty()).then(|| Value::Array(cpus))
}

/// Seconds spent per state, per CPU, from `/proc/stat`.
fn cpu_times() -> Option<Value> {
    let text = read("/proc/stat")?;
    const STATES: [&str; 10] = [
        "user",
        "nice",
        "system",
        "idle",
        "iowait",
        "irq",
        "softirq",
        "steal",
        "guest",
        "guestNice",
    ];
    let times: Vec<Value> = text
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .map(|l| {
            let mut parts = l.split_whitespace();
            let name = parts.next().unwrap_or_default();
            let mut entry = Map::new();
            entry.insert("cpu".into(), json!(name));
            for (state, raw) in STATES.iter().zip(parts) {
                let ticks = raw.parse::<f64>().unwrap_or(0.0);
                entry.insert((*state).into(), json!(ticks / TICKS_PER_SECOND));
            }
            Value::Object(entry)
        })
        .collect();
    (!times.is_empty()).then(|| Value::Array(times))
}

/// Usage of the root file system.
fn disk() -> Option<Value> {
    let st = rustix::fs::statvfs("/").ok()?;
    let block = st.f_frsize;
    let total = st.f_blocks.saturating_mul(block);
    let free = st.f_bavail.saturating_mul(block);
    let used = st.f_blocks.saturating_sub(st.f_bfree).saturating_mul(block);
    let percent = |part: u64, whole: u64| {
        if whole == 0 {
            0.0
        } else {
            part as f64 * 100.0 / whole as f64
        }
    };
    let inodes_used = st.f_files.saturating_sub(st.f_ffree);
    let fstype = read("/proc/mounts").and_then(|m| {
        m.lines().find_map(|l| {
            let mut f = l.split_whitespace();
            let (_, target, kind) = (f.next()?, f.next()?, f.next()?);
            (target == "/").then(|| kind.to_string())
        })
    });
    Some(json!([{
        "path": "/",
        "fstype": fstype.unwrap_or_default(),
        "total": total,
        "free": free,
        "used": used,
        "usedPercent": percent(used, used.saturating_add(free)),
        "inodesTotal": st.f_files,
        "inodesUsed": inodes_used,
        "inodesFree": st.f_ffree,
        "inodesUsedPercent": percent(inodes_used, st.f_files),
    }]))
}

/// The host's name, uptime, process count and operating system.
fn host() -> Option<Value> {
    let hostname = read("/proc/sys/kernel/hostname")?.trim().to_string();
    let uptime = read("/proc/uptime")
        .and_then(|u| u.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0) as u64;
    let boot_time = read("/proc/stat")
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<u64>().ok())
        })
        .unwrap_or(0);
    let procs = std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                })
                .count()
        })
        .unwrap_or(0);
    let os_release = read("/etc/os-release").unwrap_or_default();
    let release = |key: &str| {
        os_release.lines().find_map(|l| {
            let v = l.strip_prefix(key)?.strip_prefix('=')?;
            Some(v.trim_matches('"').to_string())
        })
    };
    // Containers announce themselves the way container runtimes document.
    let virtualization = if std::path::Path::new("/.dockerenv").exists() {
        ("docker", "guest")
    } else if std::path::Path::new("/run/.containerenv").exists() {
        ("podman", "guest")
    } else {
        ("", "")
    };
    Some(json!({
        "hostname": hostname,
        "uptime": uptime,
        "bootTime": boot_time,
        "procs": procs,
        "os": std::env::consts::OS,
        "platform": release("ID").unwrap_or_default(),
        "platformFamily": release("ID_LIKE").or_else(|| release("ID")).unwrap_or_default(),
        "platformVersion": release("VERSION_ID").unwrap_or_default(),
        "kernelVersion": read("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        "kernelArch": std::env::consts::ARCH,
        "hostid": read("/etc/machine-id").unwrap_or_default().trim(),
        "virtualizationSystem": virtualization.0,
        "virtualizationRole": virtualization.1,
    }))
}

/// Memory figures from `/proc/meminfo`, in bytes, under Vault's names.
fn memory() -> Option<Value> {
    let text = read("/proc/meminfo")?;
    let kb = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| {
                let v = l.strip_prefix(name)?.strip_prefix(':')?;
                v.split_whitespace().next()?.parse::<u64>().ok()
            })
            .unwrap_or(0)
            .saturating_mul(1024)
    };
    let total = kb("MemTotal");
    let available = kb("MemAvailable");
    let used = total.saturating_sub(available);
    let percent = if total == 0 {
        0.0
    } else {
        used as f64 * 100.0 / total as f64
    };
    Some(json!({
        "total": total,
        "available": available,
        "used": used,
        "usedPercent": percent,
        "free": kb("MemFree"),
        "active": kb("Active"),
        "inactive": kb("Inactive"),
        "buffers": kb("Buffers"),
        "cached": kb("Cached"),
        "dirty": kb("Dirty"),
        "shared": kb("Shmem"),
        "slab": kb("Slab"),
        "swaptotal": kb("SwapTotal"),
        "swapfree": kb("SwapFree"),
        "mapped": kb("Mapped"),
        "writeback": kb("Writeback"),
        "writebacktmp": kb("WritebackTmp"),
        "sreclaimable": kb("SReclaimable"),
        "sunreclaim": kb("SUnreclaim"),
        "pagetables": kb("PageTables"),
        "swapcached": kb("SwapCached"),
        "commitlimit": kb("CommitLimit"),
        "committedas": kb("Committed_AS"),
        "hightotal": kb("HighTotal"),
        "highfree": kb("HighFree"),
        "lowtotal": kb("LowTotal"),
        "lowfree": kb("LowFree"),
        "vmalloctotal": kb("VmallocTotal"),
        "vmallocused": kb("VmallocUsed"),
        "vmallocchunk": kb("VmallocChunk"),
        // Counts, not sizes.
        "hugepagestotal": kb("HugePages_Total") / 1024,
        "hugepagesfree": kb("HugePages_Free") / 1024,
        "hugepagesize": kb("Hugepagesize"),
        // BSD and macOS figures; Linux has none.
        "wired": 0,
        "laundry": 0,
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(target_os = "linux")]
    fn the_host_is_described_from_proc() {
        let resp = super::handle().unwrap();
        let data = resp.data.unwrap();
        assert!(resp.warnings.is_empty(), "{:?}", resp.warnings);
        assert!(data["cpu"].as_array().is_some_and(|c| !c.is_empty()));
        assert!(data["cpu_times"][0]["user"].is_number());
        assert!(data["disk"][0]["total"].as_u64().is_some_and(|t| t > 0));
        assert!(data["memory"]["total"].as_u64().is_some_and(|t| t > 0));
        assert!(data["host"]["hostname"].is_string());
        assert_eq!(data["host"]["os"], "linux");
    }
}
