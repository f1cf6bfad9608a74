/*
 * The importer process (impactd --role importer): runs the list imports queued through the API,
 * durably and resumably. See importer.c for how work is claimed and recovered.
 */
#ifndef IMPACT_IMPORTER_IMPORTER_H
#define IMPACT_IMPORTER_IMPORTER_H

#include "common/config.h"

/** The importer process's main; returns its exit status. */
int importer_main(const impact_config_t *config);

#endif
