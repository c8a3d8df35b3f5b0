/* shipped-model.h — where the shipped model, data/models/setokim-tiny, is:
 * the source tree's copy when it exists (running from a build tree), else the
 * installed one. The one place both programs look for it. */
#ifndef SETOK_SHIPPED_MODEL_H
#define SETOK_SHIPPED_MODEL_H

#include <stdbool.h>

/* The folder to use: the source tree's when it is a folder, else the installed
 * path (which may not exist; shipped_model_exists says). */
const char *shipped_model_path (void);
bool shipped_model_exists (void);
/* The two places looked at, for messages. */
const char *shipped_model_source_path (void);
const char *shipped_model_installed_path (void);

#endif
