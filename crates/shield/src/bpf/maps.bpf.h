/* The shield's maps (layouts in shield.h) and what every hook family uses: whether the current
 * task is the service, and reporting a refusal. Included once, by shield.bpf.c. */
#ifndef IMAGEGUARD_MAPS_BPF_H
#define IMAGEGUARD_MAPS_BPF_H

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SHIELD_MAX_VOLUMES);
	__type(key, __u32);
	__type(value, __u8);
} protected_sb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SHIELD_MAX_GUARDS);
	__type(key, __u32);
	__type(value, __u8);
} guard_sb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SHIELD_MAX_DEVICES);
	__type(key, __u32);
	__type(value, __u8);
} protected_dev SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SHIELD_MAX_INODES);
	__type(key, struct shield_inode);
	__type(value, __u32);
} protected_inode SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SHIELD_MAX_DIRS);
	__type(key, struct shield_inode);
	__type(value, __u32);
} protected_dir SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SHIELD_MAX_DIRS);
	__type(key, __u32);
	__type(value, __u32);
} dir_sb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SHIELD_MAX_NAMES);
	__type(key, struct shield_name);
	__type(value, __u8);
} held_name SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SHIELD_MAX_PROGRAMS);
	__type(key, struct shield_inode);
	__type(value, struct shield_program);
} certified_exe SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SHIELD_MAX_CODE_FILES);
	__type(key, struct shield_code);
	__type(value, __u8);
} closure_file SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SHIELD_MAX_HOMES);
	__type(key, struct shield_home);
	__type(value, __u8);
} certified_home SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SHIELD_MAX_VOLUMES);
	__type(key, __u32);
	__type(value, struct shield_volume);
} kernel_volume SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, SHIELD_MAX_MARKS);
	__type(key, struct shield_inode);
	__type(value, struct shield_mark);
} backup_mark SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, POLICY_CASES);
	__type(key, __u32);
	__type(value, __u8);
} verdicts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SHIELD_MAX_ENV_NAMES);
	__type(key, struct shield_env_name);
	__type(value, __u32);
} env_exact SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SHIELD_MAX_ENV_NAMES);
	__type(key, struct shield_env_name);
	__type(value, __u32);
} env_prefix SEC(".maps");

/* The programs' own bookkeeping (the service neither reads nor writes them): certified
 * processes by thread group (struct shield_certified); and the thread groups whose exec under
 * way opened a certified program, with that program's file (its key in certified_exe). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SHIELD_MAX_CERTIFIED_TASKS);
	__type(key, __u32);
	__type(value, struct shield_certified);
} certified_task SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SHIELD_MAX_CERTIFIED_TASKS);
	__type(key, __u32);
	__type(value, struct shield_inode);
} exec_pending SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct shield_service);
} service SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SHIELD_MAX_IDS);
	__type(key, struct shield_id);
	__type(value, __u8);
} own_ids SEC(".maps");

/* A thread opening /proc/PID/environ (by its pid and thread id) and the PID it names: the
 * kernel asks ptrace_access_check about that task next, which for the service or a certified
 * process is refused without an event (ps reads every process's environ). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u32);
} environ_open SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, SHIELD_EVENTS_BYTES);
} events SEC(".maps");

/* Whether `task` belongs to the service: its thread group, started when the service was. */
static __always_inline int task_is_service(struct task_struct *task)
{
	__u32 zero = 0;
	struct shield_service *s = bpf_map_lookup_elem(&service, &zero);
	if (!s || !s->tgid || s->tgid != (__u32)BPF_CORE_READ(task, tgid))
		return 0;
	/* As /proc/PID/stat shows it to the service (its time namespace's offset added, the sum
	 * never negative): unsigned addition wraps to the same value. */
	__u64 started = BPF_CORE_READ(task, group_leader, start_boottime) +
			(__u64)s->boottime_offset_ns;
	return started / SHIELD_NSEC_PER_TICK == s->start_ticks;
}

#define BTRFS_SUPER_MAGIC 0x9123683E

/* The device a file's identity names (see shield.h): its subvolume's on btrfs, when the service
 * said where that is; its superblock's everywhere else. */
static __always_inline __u32 inode_dev(struct inode *inode)
{
	struct super_block *sb = BPF_CORE_READ(inode, i_sb);
	__u32 dev = BPF_CORE_READ(sb, s_dev);
	if (BPF_CORE_READ(sb, s_magic) != BTRFS_SUPER_MAGIC)
		return dev;
	__u32 zero = 0;
	struct shield_service *s = bpf_map_lookup_elem(&service, &zero);
	if (!s || !s->btrfs_known)
		return dev;
	void *root = 0;
	__u32 anon = 0;
	if (bpf_probe_read_kernel(&root, sizeof(root), (void *)inode + s->btrfs_root_from_inode) ||
	    !root || bpf_probe_read_kernel(&anon, sizeof(anon), root + s->btrfs_anon_dev))
		return dev;
	return anon;
}

/* Whether the current task is the service's. */
static __always_inline int is_service(void)
{
	return task_is_service((struct task_struct *)bpf_get_current_task());
}

/* A refusal's event with who tried and what, the rest zero; NULL when the buffer is full. */
static __always_inline struct shield_event *new_event(__u32 op, __u32 dev)
{
	struct shield_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return 0;
	__builtin_memset(e, 0, sizeof(*e));
	__u64 id = bpf_get_current_pid_tgid();
	e->tgid = id >> 32;
	e->uid = (__u32)bpf_get_current_uid_gid();
	e->op = op;
	e->dev = dev;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	return e;
}

/* Fill `e`'s names from `d` up towards its file system's root. */
static __always_inline void fill_names(struct shield_event *e, struct dentry *d)
{
#pragma unroll
	for (int i = 0; i < SHIELD_PATH_DEPTH; i++) {
		struct dentry *parent = BPF_CORE_READ(d, d_parent);
		if (!d || parent == d) {
			e->complete = 1;
			break;
		}
		bpf_probe_read_kernel_str(e->names[i], SHIELD_NAME_LEN, BPF_CORE_READ(d, d_name.name));
		e->depth = i + 1;
		d = parent;
	}
}

/* Send event 320's facts: who, what, and the names from `d` up towards its file system's root. */
static __always_inline void report(__u32 op, __u32 dev, struct dentry *d)
{
	struct shield_event *e = new_event(op, dev);
	if (!e)
		return;
	e->ino = BPF_CORE_READ(d, d_inode, i_ino);
	fill_names(e, d);
	bpf_ringbuf_submit(e, 0);
}

#endif
