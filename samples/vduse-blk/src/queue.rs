// SPDX-License-Identifier: GPL-2.0
//! One virtio-blk queue served: every available request executed against the disk and
//! completed, then the driver notified. The ring itself (mapping, chains, reconnect log,
//! interrupts) is the library's [`vduse::vring::Vring`].

use log::warn;
use vduse::vring::Vring;

use crate::blk::Disk;

pub use vduse::vring::{Ring, Start, Transport, VringConfig};

/// Serves everything available on `vring` (until the driver has nothing more, with
/// notifications re-enabled), then notifies the driver if it wants to be.
///
/// # Errors
///
/// The ring cannot be accessed.
pub fn serve(disk: &Disk, vring: &mut Vring) -> vduse::Result<()> {
    loop {
        vring.disable_notification()?;
        while let Some(chain) = vring.pop()? {
            let used_len = match &chain.error {
                None => {
                    let mem = vring.memory();
                    disk.handle(&mem, &chain.descs).map_or(0, |c| c.used_len)
                }
                Some(e) => {
                    warn!("vq {}: request {}: {e:?}", vring.index(), chain.head);
                    0
                }
            };
            vring.add_used(chain.head, used_len)?;
        }
        if !vring.enable_notification()? {
            break;
        }
    }
    vring.signal_used()
}
