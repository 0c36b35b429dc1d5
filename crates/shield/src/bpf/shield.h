/* What the shield's programs and the service share: the maps' names and layouts. The Rust side
 * (src/maps.rs) uses the same names and sizes; tests check them against the object. */
#ifndef IMAGEGUARD_SHIELD_H
#define IMAGEGUARD_SHIELD_H

/* protected_sb: key = the protected volume's superblock device (s_dev, the kernel's encoding:
 * major << 20 | minor), value = 1. */
#define SHIELD_MAX_VOLUMES 64

/* protected_dev: key = a block device under a protected volume that is not its own (the whole
 * disk of its partition, the layers beneath a device-mapper or md device), as the kernel encodes
 * dev_t; value = 1. The volume's own device is its superblock's: protected_sb covers it. */
#define SHIELD_MAX_DEVICES 256

/* service: one entry, key 0 = the service's thread group id (its own tasks may change files). */

#endif
