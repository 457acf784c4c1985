//! `wk-lazyfs MOUNTPOINT`: a FUSE filesystem for power-loss tests (the LazyFS technique).
//!
//! Everything lives in memory. File contents written but not yet made durable by `fsync` /
//! `fdatasync` are kept apart from the synced contents; the command `cut` (one line on stdin)
//! simulates a power cut: every file's contents roll back to what was last synced (files never
//! synced become empty). Names (create, mkdir, rename, unlink) are durable at once, like a
//! journaling filesystem's metadata. Files are opened with `FOPEN_DIRECT_IO`, so the kernel
//! page cache holds nothing that could survive a cut. Prints `ready` once mounted, answers each
//! `cut` with `cut <files> <bytes-dropped>`; unmounts and exits when stdin closes.

use fuser::{
    Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    LockOwner, MountOption, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
    WriteFlags,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::{OsStr, OsString};
use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// No attribute or entry caching: every lookup reflects the state after a cut.
const TTL: Duration = Duration::ZERO;
const PAGE: usize = 4096;

#[derive(Default)]
struct Node {
    dir: bool,
    perm: u16,
    nlink: u32,
    mtime: Option<SystemTime>,
    /// Contents as the processes see them.
    data: Vec<u8>,
    /// Contents as of the last fsync (what a power cut leaves).
    synced: Vec<u8>,
    /// Pages written since the last fsync.
    dirty: BTreeSet<usize>,
    /// Size changed since the last fsync.
    resized: bool,
    children: BTreeMap<OsString, u64>,
}

impl Node {
    fn sync(&mut self) {
        self.synced.resize(self.data.len(), 0);
        for p in std::mem::take(&mut self.dirty) {
            let (a, b) = (p * PAGE, ((p + 1) * PAGE).min(self.data.len()));
            if a < b {
                self.synced[a..b].copy_from_slice(&self.data[a..b]);
            }
        }
        self.resized = false;
    }
    fn mark(&mut self, from: usize, to: usize) {
        if to > from {
            self.dirty.extend(from / PAGE..=(to - 1) / PAGE);
        }
    }
}

struct State {
    nodes: HashMap<u64, Node>,
    next: u64,
}

impl State {
    fn attr(&self, ino: u64) -> Option<FileAttr> {
        let n = self.nodes.get(&ino)?;
        let t = n.mtime.unwrap_or(SystemTime::UNIX_EPOCH);
        Some(FileAttr {
            ino: INodeNo(ino),
            size: n.data.len() as u64,
            blocks: n.data.len().div_ceil(512) as u64,
            atime: t,
            mtime: t,
            ctime: t,
            crtime: t,
            kind: if n.dir {
                FileType::Directory
            } else {
                FileType::RegularFile
            },
            perm: n.perm,
            nlink: n.nlink,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: PAGE as u32,
            flags: 0,
        })
    }

    fn add(&mut self, parent: u64, name: &OsStr, dir: bool, mode: u32) -> Result<u64, Errno> {
        let p = self.nodes.get(&parent).ok_or(Errno::ENOENT)?;
        if !p.dir {
            return Err(Errno::ENOTDIR);
        }
        if p.children.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        let ino = self.next;
        self.next += 1;
        self.nodes.insert(
            ino,
            Node {
                dir,
                perm: (mode & 0o7777) as u16,
                nlink: if dir { 2 } else { 1 },
                mtime: Some(SystemTime::now()),
                ..Node::default()
            },
        );
        self.nodes
            .get_mut(&parent)
            .unwrap()
            .children
            .insert(name.to_os_string(), ino);
        Ok(ino)
    }

    fn child(&self, parent: u64, name: &OsStr) -> Option<u64> {
        self.nodes.get(&parent)?.children.get(name).copied()
    }

    /// Removes `name` from `parent` (a directory only when empty).
    fn remove(&mut self, parent: u64, name: &OsStr, want_dir: bool) -> Result<(), Errno> {
        let ino = self.child(parent, name).ok_or(Errno::ENOENT)?;
        let n = &self.nodes[&ino];
        match (n.dir, want_dir) {
            (true, false) => return Err(Errno::EISDIR),
            (false, true) => return Err(Errno::ENOTDIR),
            (true, true) if !n.children.is_empty() => return Err(Errno::ENOTEMPTY),
            _ => {}
        }
        self.nodes.get_mut(&parent).unwrap().children.remove(name);
        // Open handles keep no reference here: an unlinked file's data goes at once.
        self.nodes.remove(&ino);
        Ok(())
    }

    /// The power cut: contents back to the last fsync. Returns (files, bytes dropped).
    fn cut(&mut self) -> (usize, usize) {
        let mut dropped = 0;
        let mut files = 0;
        for n in self.nodes.values_mut().filter(|n| !n.dir) {
            if !n.dirty.is_empty() || n.resized || n.data.len() != n.synced.len() {
                files += 1;
                dropped += n.dirty.len() * PAGE + n.data.len().abs_diff(n.synced.len());
            }
            n.data = n.synced.clone();
            n.dirty.clear();
            n.resized = false;
        }
        (files, dropped)
    }
}

struct LazyFs(Arc<Mutex<State>>);

/// Answers an operation without data.
fn done(r: Result<(), Errno>, reply: ReplyEmpty) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

impl LazyFs {
    fn entry(&self, r: Result<u64, Errno>, reply: ReplyEntry) {
        let s = self.0.lock().unwrap();
        match r.and_then(|ino| s.attr(ino).ok_or(Errno::ENOENT)) {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }
}

impl Filesystem for LazyFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let r = self
            .0
            .lock()
            .unwrap()
            .child(parent.0, name)
            .ok_or(Errno::ENOENT);
        self.entry(r, reply);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.0.lock().unwrap().attr(ino.0) {
            Some(a) => reply.attr(&TTL, &a),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut s = self.0.lock().unwrap();
        let Some(n) = s.nodes.get_mut(&ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        if let Some(m) = mode {
            n.perm = (m & 0o7777) as u16;
        }
        if let Some(len) = size {
            let old = n.data.len();
            n.data.resize(len as usize, 0);
            n.mark(old.min(len as usize), old.max(len as usize));
            n.resized = true;
            n.mtime = Some(SystemTime::now());
        }
        let a = s.attr(ino.0).unwrap();
        reply.attr(&TTL, &a);
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let r = self.0.lock().unwrap().add(parent.0, name, true, mode);
        self.entry(r, reply);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        done(self.0.lock().unwrap().remove(parent.0, name, false), reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        done(self.0.lock().unwrap().remove(parent.0, name, true), reply);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        _flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mut s = self.0.lock().unwrap();
        let Some(ino) = s.child(parent.0, name) else {
            return reply.error(Errno::ENOENT);
        };
        if !s.nodes.get(&newparent.0).is_some_and(|n| n.dir) {
            return reply.error(Errno::ENOTDIR);
        }
        if let Some(old) = s.child(newparent.0, newname) {
            if old == ino {
                return reply.ok();
            }
            let dir = s.nodes[&old].dir;
            if let Err(e) = s.remove(newparent.0, newname, dir) {
                return reply.error(e);
            }
        }
        s.nodes.get_mut(&parent.0).unwrap().children.remove(name);
        s.nodes
            .get_mut(&newparent.0)
            .unwrap()
            .children
            .insert(newname.to_os_string(), ino);
        reply.ok();
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        if self.0.lock().unwrap().nodes.contains_key(&ino.0) {
            reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO);
        } else {
            reply.error(Errno::ENOENT);
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let mut s = self.0.lock().unwrap();
        match s.add(parent.0, name, false, mode) {
            Ok(ino) => {
                let a = s.attr(ino).unwrap();
                reply.created(
                    &TTL,
                    &a,
                    Generation(0),
                    FileHandle(0),
                    FopenFlags::FOPEN_DIRECT_IO,
                );
            }
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let s = self.0.lock().unwrap();
        let Some(n) = s.nodes.get(&ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        let a = (offset as usize).min(n.data.len());
        let b = (a + size as usize).min(n.data.len());
        reply.data(&n.data[a..b]);
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut s = self.0.lock().unwrap();
        let Some(n) = s.nodes.get_mut(&ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        let (a, b) = (offset as usize, offset as usize + data.len());
        if n.data.len() < b {
            n.data.resize(b, 0);
            n.resized = true;
        }
        n.data[a..b].copy_from_slice(data);
        n.mark(a, b);
        n.mtime = Some(SystemTime::now());
        reply.written(data.len() as u32);
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok(); // close(2) makes nothing durable
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut s = self.0.lock().unwrap();
        let synced = s.nodes.get_mut(&ino.0).map(Node::sync).ok_or(Errno::ENOENT);
        done(synced, reply);
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok(); // names are durable at once
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let s = self.0.lock().unwrap();
        let Some(d) = s.nodes.get(&ino.0).filter(|n| n.dir) else {
            return reply.error(Errno::ENOTDIR);
        };
        let mut entries = vec![
            (ino.0, FileType::Directory, OsString::from(".")),
            (ino.0, FileType::Directory, OsString::from("..")),
        ];
        for (name, child) in &d.children {
            let kind = if s.nodes[child].dir {
                FileType::Directory
            } else {
                FileType::RegularFile
            };
            entries.push((*child, kind, name.clone()));
        }
        for (i, (child, kind, name)) in entries.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), (i + 1) as u64, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(
            1 << 24,
            1 << 23,
            1 << 23,
            1 << 20,
            1 << 19,
            PAGE as u32,
            255,
            PAGE as u32,
        );
    }
}

fn main() -> std::io::Result<()> {
    let mountpoint = std::env::args_os()
        .nth(1)
        .ok_or_else(|| std::io::Error::other("usage: wk-lazyfs MOUNTPOINT"))?;
    let mut root = Node {
        dir: true,
        perm: 0o755,
        nlink: 2,
        ..Node::default()
    };
    root.mtime = Some(SystemTime::now());
    let state = Arc::new(Mutex::new(State {
        nodes: HashMap::from([(1, root)]),
        next: 2,
    }));
    let mut config = Config::default();
    // auto_unmount: fusermount3 unmounts even if this process is killed.
    config.mount_options = vec![
        MountOption::FSName("wk-lazyfs".into()),
        MountOption::DefaultPermissions,
        MountOption::AutoUnmount,
    ];
    config.acl = fuser::SessionACL::RootAndOwner;
    let session = fuser::spawn_mount(LazyFs(state.clone()), &mountpoint, &config)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready")?;
    out.flush()?;
    for line in std::io::stdin().lock().lines() {
        match line?.trim() {
            "cut" => {
                let (files, bytes) = state.lock().unwrap().cut();
                writeln!(out, "cut {files} {bytes}")?;
            }
            other => writeln!(out, "error: unknown command {other:?}")?,
        }
        out.flush()?;
    }
    drop(session); // unmounts
    Ok(())
}
