/* The shield's hooks on itself (included by shield.bpf.c): nobody but the service undoes or
 * overrules it.
 * Its pins sit in a bpf file system of its own, whose superblock is shielded like a volume's
 * (no unlink, rename or create there) and which nobody else may even open or walk
 * (inode_permission: no BPF_OBJ_GET of a pinned link or map); and nobody else may get a
 * descriptor for its programs, maps or links by id (the bpf hook: *_GET_FD_BY_ID), so no link is
 * detached and no map written; nor loads a BPF program that could overrule it (refused_load).
 * The pins and ids only while a service lives: when none does (it died; the file
 * hooks then refuse every change), its successor must open the pins to take the shield over. */
#ifndef IMAGEGUARD_SELF_BPF_H
#define IMAGEGUARD_SELF_BPF_H

static __always_inline void report_undo(__u32 kind, __u32 id)
{
	struct shield_event *e = new_event(SHIELD_OP_UNDO, 0);
	if (!e)
		return;
	e->target = id;
	e->signal = kind;
	bpf_ringbuf_submit(e, 0);
}

SEC("lsm/inode_permission")
int BPF_PROG(shield_inode_permission, struct inode *inode, int mask)
{
	__u32 zero = 0;
	struct shield_service *s = bpf_map_lookup_elem(&service, &zero);
	if (!s || !s->tgid || !s->pins_dev || BPF_CORE_READ(inode, i_sb, s_dev) != s->pins_dev)
		return 0;
	if (is_service())
		return 0;
	report_undo(0, 0);
	return -EPERM;
}

/* Whether loading a program of `type` attached as `attach` could overrule the shield: an
 * fmod_ret program on a security_* function replaces the LSM's answer, an extension (freplace)
 * replaces a BPF program's code; both always. With the admin lock set also every tracing program
 * (kprobes, tracepoints, perf events, raw tracepoints, fentry/fexit): each may write the memory
 * of the process it fires in (bpf_probe_write_user), a certified one included. */
static __always_inline int overrules(__u32 type, __u32 attach, struct shield_service *s)
{
	if (type == BPF_PROG_TYPE_EXT ||
	    (type == BPF_PROG_TYPE_TRACING && attach == BPF_MODIFY_RETURN))
		return 1;
	if (!s->admin_locked)
		return 0;
	switch (type) {
	case BPF_PROG_TYPE_KPROBE:
	case BPF_PROG_TYPE_TRACEPOINT:
	case BPF_PROG_TYPE_PERF_EVENT:
	case BPF_PROG_TYPE_RAW_TRACEPOINT:
	case BPF_PROG_TYPE_RAW_TRACEPOINT_WRITABLE:
	case BPF_PROG_TYPE_TRACING:
		return 1;
	}
	return 0;
}

static __always_inline int refused_load(union bpf_attr *attr, struct shield_service *s)
{
	__u32 type = 0, attach = 0;
	if (bpf_probe_read_kernel(&type, sizeof(type), &attr->prog_type) ||
	    bpf_probe_read_kernel(&attach, sizeof(attach), &attr->expected_attach_type))
		return 0;
	if (!overrules(type, attach, s) || is_service())
		return 0;
	struct shield_event *e = new_event(SHIELD_OP_BPF_LOAD, 0);
	if (e) {
		e->target = type;
		e->signal = attach;
		bpf_ringbuf_submit(e, 0);
	}
	return -EPERM;
}

SEC("lsm/bpf")
int BPF_PROG(shield_bpf, int cmd, union bpf_attr *attr, unsigned int size)
{
	if (cmd == BPF_PROG_LOAD) {
		__u32 zero = 0;
		struct shield_service *s = bpf_map_lookup_elem(&service, &zero);
		return s ? refused_load(attr, s) : 0;
	}
	struct shield_id key = {};
	switch (cmd) {
	case BPF_PROG_GET_FD_BY_ID:
		key.kind = SHIELD_KIND_PROG;
		break;
	case BPF_MAP_GET_FD_BY_ID:
		key.kind = SHIELD_KIND_MAP;
		break;
	case BPF_LINK_GET_FD_BY_ID:
		key.kind = SHIELD_KIND_LINK;
		break;
	default:
		return 0;
	}
	__u32 zero = 0;
	struct shield_service *s = bpf_map_lookup_elem(&service, &zero);
	if (!s || !s->tgid)
		return 0;
	/* prog_id, map_id and link_id all open the attribute union. */
	if (bpf_probe_read_kernel(&key.id, sizeof(key.id), attr))
		return 0;
	if (!bpf_map_lookup_elem(&own_ids, &key) || is_service())
		return 0;
	report_undo(key.kind, key.id);
	return -EPERM;
}

#endif
