/* What the shield's programs and the service share: the maps' layouts and the events the
 * programs send. The Rust side's structures are generated from this file by bindgen
 * (src/bindings.rs, committed; `build-bpf.sh --check` fails when they differ). */
#ifndef IMAGEGUARD_SHIELD_H
#define IMAGEGUARD_SHIELD_H

#include <linux/types.h>

/* How many names of a refused entry's path an event carries (the entry's own first, then its
 * parents'), and how long each may be (longer ones are cut). */
#define SHIELD_PATH_DEPTH 8
#define SHIELD_NAME_LEN 64

/* A file's identity in the maps that name files (struct shield_inode, struct shield_name):
 * its device as `stat` shows it and its inode number. That is its superblock's device but on
 * btrfs, where it is the device of the file's subvolume (struct shield_service says where the
 * programs find it). Maps keyed by file system (protected_sb, dir_sb) take the superblock's. */

/* protected_sb: key = the protected volume's superblock device (s_dev, the kernel's encoding:
 * major << 20 | minor), value = 1. */
#define SHIELD_MAX_VOLUMES 64

/* protected_dev: key = a block device under a protected volume that is not its own (the whole
 * disk of its partition, the layers beneath a device-mapper or md device), as the kernel encodes
 * dev_t; value = 1. The volume's own device is its superblock's: protected_sb covers it. */
#define SHIELD_MAX_DEVICES 256
/* Set in a protected_dev key that names a character device (a disk's SCSI generic or NVMe
 * generic node): the kernel's dev_t uses 12 bits of major, and no character major reaches
 * 2048. */
#define SHIELD_CHAR_DEV 0x80000000U

/* guard_sb: key = a guard's superblock device (the FUSE file system the service serves a
 * protected volume or folder through), value = 1. Changes through it are the guard's to decide;
 * mounting on or inside it, and unmounting or moving it, are the service's alone. */
#define SHIELD_MAX_GUARDS 64

/* protected_inode: a file beneath a protected volume on another file system (the image file a
 * loop device reads the volume from), by its superblock's device and inode number; value = 1.
 * Opening it for writing, truncating, deleting, renaming it or over it, linking it and changing
 * its attributes are refused. The value: the superblock device of its file system when that is
 * btrfs (counted in dir_sb), else 0. */
struct shield_inode {
	__u32 dev;
	__u32 _pad;
	__u64 ino;
};
#define SHIELD_MAX_INODES 256

/* certified_exe: a certified program's file (a native program, or a script), by its file
 * system's device and inode (struct shield_inode), as exec sees it; value: struct
 * shield_program. A process that executes one is marked certified (certified_task, by thread
 * group, struct shield_certified): nothing but the service may reach into it (its memory,
 * descriptors, ptrace), nor into what it forks without executing another program; and no traced
 * process may execute one (a tracer would have it in hand from its first instruction).
 * Its certification ends, for that process's life and what it forks, when code from outside
 * the program's closure arrives (see certify.bpf.h): its start-up environment sets a variable
 * the policy core's environment rules name for its runtimes (policy_codes.h), or Python's user
 * site would come from a home not certified; it maps executable code of a file not in
 * closure_file, or anonymous executable memory; a Python program opens a file it could import
 * code from that is not in closure_file; it asks to be traced (PTRACE_TRACEME). */
#define SHIELD_MAX_PROGRAMS 512
#define SHIELD_MAX_CERTIFIED_TASKS 8192
struct shield_program {
	/* The program's number in closure_file and certified_home (the service numbers its
	 * certified programs). */
	__u32 id;
	/* Its runtimes (policy_codes.h: POLICY_RUNTIME_*). */
	__u32 runtimes;
};
/* certified_home: the homes whose Python user site a program's closure holds, by program number
 * and path (without trailing slashes, NUL-padded); value = 1. */
#define SHIELD_HOME_LEN 128
struct shield_home {
	__u32 program;
	char home[SHIELD_HOME_LEN];
};
#define SHIELD_MAX_HOMES 1024
/* env_exact, env_prefix: the start-up variables that end a certification (compiled from the
 * policy core's environment rules by the service): by name (NUL-padded), or by a prefix of
 * one of the lengths policy_codes.h lists; value: the runtimes (POLICY_RUNTIME_*) that refuse
 * it. A name in env_exact is decided by that entry alone; SHIELD_ENV_NO_USER_SITE in its value
 * marks the variable that turns Python's user site off. */
#define SHIELD_ENV_NAME 32
struct shield_env_name {
	char name[SHIELD_ENV_NAME];
};
#define SHIELD_MAX_ENV_NAMES 128
#define SHIELD_ENV_NO_USER_SITE 0x80000000U
/* certified_task's value: the group leader's start (ns since boot) and the program's number;
 * `ended` 1: its certification ended (what it forks inherits that). */
struct shield_certified {
	__u64 start;
	__u32 program;
	/* The program's runtimes (struct shield_program). */
	__u32 runtimes;
	__u32 ended;
	__u32 _pad;
};
/* closure_file: the files a certified program may load code from (its closure, its own file
 * and its interpreter's included), by program number and identity; value = 1. */
struct shield_code {
	__u32 program;
	__u32 dev;
	__u64 ino;
};
#define SHIELD_MAX_CODE_FILES 65536

/* kernel_volume: the file systems whose policy the kernel decides (the kernel backend), by
 * superblock device, with their circumstances (SHIELD_VOLUME_*).
 * backup_mark: the entries of such a file system the policy core classified as backups, by
 * device and inode, with their class (a POLICY_CLASS_*); an entry without one is ordinary.
 * verdicts: the policy core's compiled decision, one POLICY_VERDICT_* per case (the index in
 * policy_codes.h). */
struct shield_volume {
	__u32 flags;
};
#define SHIELD_VOLUME_PROTECTION_OFF 1U
#define SHIELD_VOLUME_KEY_WINDOW 2U
struct shield_mark {
	__u32 class;
};
#define SHIELD_MAX_MARKS (1U << 20)

/* protected_dir: folders nothing in may change but by the service, the folder itself included
 * and at any depth, whatever mount or name leads there (by device and inode, struct
 * shield_inode; value = its file system's superblock device, which dir_sb counts it under): a
 * protected folder of a larger file system (the rest of that file
 * system stays writable), and while the admin lock is set, imageguard's state folder (and its
 * configuration's folder when the file is missing). An entry is in such a folder when one of
 * its parents up to its file system's root is one; an entry whose parents cannot be followed
 * that far (a disconnected dentry, as open_by_handle_at may give) on a file system holding such
 * a folder counts as inside.
 * dir_sb: how many protected_dir entries each file system holds, and on btrfs how many
 * protected_inode entries too (key: its superblock device; value: the count); the hooks look at
 * an entry's parents only on such a file system, and nobody but the service deletes a btrfs
 * subvolume there. */
#define SHIELD_MAX_DIRS 256
/* How many parents the hooks follow before an entry counts as inside (deeper than any path). */
#define SHIELD_MAX_DEPTH 65536

/* held_name: a name nobody but the service may create, remove, rename or replace in one folder
 * (the folder by device and inode, the name NUL-padded; value = 1): while the admin lock is
 * set, imageguard's unit and drop-in folder names in systemd's unit folders (a unit or a
 * symlink to /dev/null there would shadow or mask the packaged one at the next boot) and its
 * links in their .wants folders (removed, it would not start at the next boot). */
struct shield_name {
	__u32 dev;
	__u32 _pad;
	__u64 ino;
	char name[SHIELD_NAME_LEN];
};
#define SHIELD_MAX_NAMES 64

/* own_ids: the shield's own programs, maps and links by kind and id; value = 1. Nobody but the
 * service may get a descriptor for them by id (to detach a link, write a map). */
enum shield_kind {
	SHIELD_KIND_PROG = 1,
	SHIELD_KIND_MAP = 2,
	SHIELD_KIND_LINK = 3,
};
struct shield_id {
	__u32 kind;
	__u32 id;
};
#define SHIELD_MAX_IDS 256

/* service: one entry, key 0: the service's thread group (its own tasks may change files). A
 * thread group id alone would let a process that inherits the number after the service died
 * pass as the service: the group leader's start time, in clock ticks since boot as
 * /proc/PID/stat field 22 gives it (USER_HZ = 100), must match too. */
struct shield_service {
	__u32 tgid;
	/* 1 while the admin lock is set: then no other task may signal the service (it stops only
	 * through its own authenticated path). */
	__u32 admin_locked;
	__u64 start_ticks;
	/* The superblock device of the bpf file system the shield is pinned in (0: none): nobody
	 * but the service may open, list, remove or add anything there. */
	__u32 pins_dev;
	/* How many names held_name holds (0: the file hooks need not read names). */
	__u32 held_names;
	/* The mount namespace the service mounts its guards in (its inode number, as
	 * /proc/PID/ns/mnt shows it; 0 while it has no guard): there nobody else moves a mount
	 * (mount --move), pivots the root, unmounts a mount that has mounts beneath it (umount -l
	 * of a guard's parent would take the guard with it), or mounts where mounts would be
	 * hidden beneath. */
	__u32 mount_ns;
	__u32 _pad;
	/* Which build of the programs the pins hold (the service's hash of its object): a service
	 * of another build replaces them instead of taking them over. */
	__u64 object_id;
	/* The boot clock's offset (ns) in the time namespace the service reads its start in:
	 * /proc/PID/stat shows start_boottime plus the reader's offset (a service started under
	 * `unshare --time --boottime` would not be recognised, and nobody could end its mark). */
	__s64 boottime_offset_ns;
	/* Where btrfs keeps the device `stat` shows for a file (its subvolume's own anonymous
	 * device: the superblock's device is one for every subvolume, and inode numbers repeat
	 * across subvolumes): the struct btrfs_root pointer of the btrfs_inode around a struct
	 * inode, as an offset from the inode (bytes, negative), and the anon_dev field's offset in
	 * struct btrfs_root. Read from the running kernel's BTF by the service; btrfs_known 0: not
	 * known, and the service leaves btrfs files to the FUSE guard. */
	__s32 btrfs_root_from_inode;
	__u32 btrfs_anon_dev;
	__u32 btrfs_known;
	__u32 _pad2;
};

/* Nanoseconds per clock tick (USER_HZ = 100 on every architecture the shield builds for). */
#define SHIELD_NSEC_PER_TICK 10000000ULL

/* What was refused. */
enum shield_op {
	SHIELD_OP_OPEN_WRITE = 1,
	SHIELD_OP_UNLINK = 2,
	SHIELD_OP_RMDIR = 3,
	SHIELD_OP_RENAME = 4,
	SHIELD_OP_LINK = 5,
	SHIELD_OP_CREATE = 6,
	SHIELD_OP_SETXATTR = 7,
	SHIELD_OP_REMOVEXATTR = 8,
	SHIELD_OP_TRUNCATE = 9,
	SHIELD_OP_CHMOD = 10,
	SHIELD_OP_CHOWN = 11,
	SHIELD_OP_OPEN_DEVICE = 12,
	/* Reaching into the service: ptrace, /proc/PID/mem, fd, root, cwd, ns, process_vm_*. */
	SHIELD_OP_PTRACE = 13,
	/* A signal to the service while the admin lock is set. */
	SHIELD_OP_SIGNAL = 14,
	/* Reaching the shield itself: its pins, or a descriptor for its programs, maps or links. */
	SHIELD_OP_UNDO = 15,
	/* Mounting a protected volume again, or anything on or inside it or its guard. */
	SHIELD_OP_MOUNT = 16,
	/* Unmounting a guard or a hidden backing, or moving it away. */
	SHIELD_OP_UNMOUNT = 17,
	/* Reaching into a certified process (as SHIELD_OP_PTRACE for the service). */
	SHIELD_OP_PTRACE_CERTIFIED = 18,
	/* A traced process executing a certified program. */
	SHIELD_OP_EXEC_TRACED = 19,
	/* Loading a BPF program that could overrule the shield (target: its program type,
	 * signal: its expected attach type). */
	SHIELD_OP_BPF_LOAD = 20,
	/* Any other change of a file's attributes (its times: utimes, touch -d). */
	SHIELD_OP_SETATTR = 21,
	/* In the namespace the guards are mounted in: a mount moved (mount --move), the root
	 * pivoted, a mount with mounts beneath it unmounted, or a mount that would hide mounts. */
	SHIELD_OP_MOVE_MOUNT = 22,
	/* A btrfs subvolume deleted (BTRFS_IOC_SNAP_DESTROY, _V2) on a file system holding a
	 * protected volume, folder or image file. */
	SHIELD_OP_SUBVOLUME_DELETE = 23,
	/* A certified process's certification ended (not a refusal): `signal` says why
	 * (enum shield_uncertified), names[0] the variable or the file. */
	SHIELD_OP_UNCERTIFIED = 24,
	/* The policy refused an operation on a volume the kernel decides (policy_op,
	 * policy_class, verdict and certified say the case). */
	SHIELD_OP_POLICY = 25,
};

enum shield_uncertified {
	/* Its start-up environment sets a variable that changes its code. */
	SHIELD_UNCERTIFIED_VARIABLE = 1,
	/* Python's user site would come from this home (names[0]; empty: HOME unset). */
	SHIELD_UNCERTIFIED_HOME = 2,
	/* Its start-up strings could not be read whole. */
	SHIELD_UNCERTIFIED_UNREADABLE = 3,
	/* It mapped executable code of a file outside its closure. */
	SHIELD_UNCERTIFIED_FOREIGN_CODE = 4,
	/* It mapped anonymous executable memory. */
	SHIELD_UNCERTIFIED_ANONYMOUS_CODE = 5,
	/* A Python program opened a file it could import code from, outside its closure. */
	SHIELD_UNCERTIFIED_FOREIGN_MODULE = 6,
	/* It asked to be traced. */
	SHIELD_UNCERTIFIED_TRACEME = 7,
};


/* events (a ring buffer): one per refusal, for event 320. For the task hooks, names[0] is the
 * command name of the task reached. */
struct shield_event {
	__u64 ino;
	__u32 tgid;
	__u32 uid;
	/* The superblock's device, or for SHIELD_OP_OPEN_DEVICE the device opened. */
	__u32 dev;
	/* enum shield_op */
	__u32 op;
	/* Names filled in `names`; `complete`: 1 when they reach the file system's root. */
	__u32 depth;
	__u32 complete;
	/* For SHIELD_OP_PTRACE(_CERTIFIED) and SHIELD_OP_SIGNAL: the thread group reached, and
	 * the signal. */
	__u32 target;
	__u32 signal;
	/* For SHIELD_OP_POLICY: the case (POLICY_OP_*, POLICY_CLASS_*, whether the caller was
	 * certified) and its POLICY_VERDICT_*. */
	__u32 policy_op;
	__u32 policy_class;
	__u32 certified;
	__u32 verdict;
	char comm[16];
	char names[SHIELD_PATH_DEPTH][SHIELD_NAME_LEN];
};

#define SHIELD_EVENTS_BYTES (256 * 1024)

#endif
