//! The certified programs as the kernel shield knows them: each program's file as exec opens
//! it (certified_exe), with its number and runtimes, the homes whose Python user site its
//! closure holds (certified_home), and the files its closure lets it load code from
//! (closure_file), so that the programs end a process's certification where the kernel sees
//! foreign code arrive (see `crates/shield/src/bpf/certify.bpf.h`).
//! Kept current from the certified list: the programs' files on every call (a program replaced
//! at its path is followed), a closure's files when its entry was certified anew.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::Result;
use imageguard_policy::certification::{CertifiedEntry, CertifiedList};
use imageguard_policy::compiled::environment::runtime_mask;
use imageguard_shield::{Program, Shield};

/// A file's identity as the programs see it: device (kernel encoding) and inode.
type Identity = (u32, u64);

/// What the shield holds of the certified programs.
#[derive(Debug, Default)]
pub struct CertifiedInKernel {
    /// Each entry's number (by path), kept for the service's life: a running process's
    /// certification names it, so a number is never given to another entry.
    ids: BTreeMap<String, u32>,
    /// The programs' files and the record each carries.
    programs: BTreeMap<Identity, Program>,
    /// Each entry's closure files, and the certification time they were read for.
    closures: BTreeMap<String, (i64, BTreeSet<Identity>)>,
    /// What closure_file holds: (program number, identity).
    code: BTreeSet<(u32, Identity)>,
    /// What certified_home holds: (program number, home).
    homes: BTreeSet<(u32, String)>,
}

impl CertifiedInKernel {
    /// Make the shield's maps say what `list` says; `identities` gives a path's identities as
    /// exec and mmap see them (on overlayfs, its layers' too).
    pub fn sync(
        &mut self,
        shield: &mut Shield,
        list: &CertifiedList,
        identities: impl Fn(&Path) -> Vec<Identity>,
    ) -> Result<()> {
        let mut programs = BTreeMap::new();
        let mut code = BTreeSet::new();
        let mut entries = BTreeSet::new();
        let mut homes = BTreeSet::new();
        for entry in &list.entries {
            // An entry without a closure (the policy core's NoClosure) loads nothing but its
            // own file: its processes lose their mark at their first library. A sync tool's
            // processes are marked too, so that nobody reaches into them.
            entries.insert(entry.path.clone());
            let next = self.ids.len() as u32;
            let id = *self.ids.entry(entry.path.clone()).or_insert(next);
            let program = Program {
                id,
                runtimes: entry
                    .closure
                    .as_ref()
                    .map_or(0, |c| runtime_mask(&c.runtimes)),
            };
            if let Some(c) = &entry.closure {
                homes.extend(c.homes.iter().map(|h| (id, h.clone())));
            }
            let own = identities(Path::new(&entry.path));
            for &i in &own {
                programs.insert(i, program);
            }
            let files = self.closure_files(entry, &identities);
            code.extend(files.iter().chain(&own).map(|&i| (id, i)));
        }
        self.closures.retain(|path, _| entries.contains(path));
        for (&(dev, ino), program) in &programs {
            if self.programs.get(&(dev, ino)) != Some(program) {
                shield.protect_program(dev, ino, program)?;
            }
        }
        for &(dev, ino) in self.programs.keys() {
            if !programs.contains_key(&(dev, ino)) {
                shield.release_program(dev, ino)?;
            }
        }
        self.programs = programs;
        for &(id, (dev, ino)) in code.difference(&self.code) {
            shield.allow_code(id, dev, ino)?;
        }
        for &(id, (dev, ino)) in self.code.difference(&code) {
            shield.disallow_code(id, dev, ino)?;
        }
        self.code = code;
        for (id, home) in homes.difference(&self.homes) {
            shield.allow_home(*id, home)?;
        }
        for (id, home) in self.homes.difference(&homes) {
            shield.disallow_home(*id, home)?;
        }
        self.homes = homes;
        Ok(())
    }

    /// The identities of `entry`'s closure files and interpreter, read again only when it was
    /// certified anew (a file that changes since breaks the closure: the identity crate's watch
    /// distrusts the program, and the kernel, which knows the old identity only, does too).
    fn closure_files(
        &mut self,
        entry: &CertifiedEntry,
        identities: &impl Fn(&Path) -> Vec<Identity>,
    ) -> BTreeSet<Identity> {
        if let Some((at, files)) = self.closures.get(&entry.path) {
            if *at == entry.certified_at {
                return files.clone();
            }
        }
        let mut files = BTreeSet::new();
        if let Some(closure) = &entry.closure {
            for f in &closure.files {
                files.extend(identities(Path::new(&f.path)));
            }
        }
        if let Some(interp) = &entry.interpreter {
            files.extend(identities(Path::new(&interp.path)));
        }
        self.closures
            .insert(entry.path.clone(), (entry.certified_at, files.clone()));
        files
    }
}
