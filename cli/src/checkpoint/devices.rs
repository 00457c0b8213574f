//! `checkpoint pair`, `devices` and `unpair`: files in the station's data
//! directory, which the running station reads at each request.

use std::path::Path;

use anyhow::Context;
use tessera_checkpoint::devices::Devices;
use tessera_checkpoint::files;

use crate::fmt;

fn open(data: &Path) -> anyhow::Result<Devices> {
    anyhow::ensure!(
        data.join(files::DEVICES).is_dir(),
        "{} is no station's data directory: start `tessera checkpoint serve --data {}` first",
        data.display(),
        data.display()
    );
    Ok(Devices::new(data))
}

/// `tessera checkpoint pair`.
pub fn pair(data: &Path) -> anyhow::Result<()> {
    let devices = open(data)?;
    let code = devices.new_code(fmt::now())?;
    let url = std::fs::read_to_string(data.join(files::STATION_URL))
        .with_context(|| format!("{} holds no station URL", data.display()))?;
    outln!("{}#pair={code}", url.trim());
    outln!("(one device, once, within 10 minutes)");
    Ok(())
}

/// `tessera checkpoint devices`.
pub fn list(data: &Path) -> anyhow::Result<()> {
    let devices = open(data)?.list()?;
    if devices.is_empty() {
        outln!("no device is paired");
    }
    for d in devices {
        outln!("{}  paired {}", d.device, fmt::time(d.paired_at));
    }
    Ok(())
}

/// `tessera checkpoint unpair`.
pub fn unpair(data: &Path, device: Option<&str>) -> anyhow::Result<()> {
    let revoked = open(data)?.unpair(device)?;
    match (device, revoked.is_empty()) {
        (Some(id), true) => {
            return Err(crate::Usage::new(format!(
                "no paired device {id}: see `tessera checkpoint devices --data {}`",
                data.display()
            ))
            .into());
        }
        (None, true) => outln!("no device was paired"),
        _ => {
            for id in revoked {
                outln!("unpaired {id}");
            }
        }
    }
    Ok(())
}
