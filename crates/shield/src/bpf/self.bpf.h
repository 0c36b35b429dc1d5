/* The shield's hooks on itself (included by shield.bpf.c): nobody but the service undoes it.
 * Its pins sit in a bpf file system of its own, whose superblock is shielded like a volume's
 * (no unlink, rename or create there) and which nobody else may even open or walk
 * (inode_permission: no BPF_OBJ_GET of a pinned link or map); and nobody else may get a
 * descriptor for its programs, maps or links by id (the bpf hook: *_GET_FD_BY_ID), so no link is
 * detached and no map written. Only while a service lives: when none does (it died; the file
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

SEC("lsm/bpf")
int BPF_PROG(shield_bpf, int cmd, union bpf_attr *attr, unsigned int size)
{
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
