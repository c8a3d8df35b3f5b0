/* shipped-model.c — where the shipped model is (shipped-model.h). */
#include "shipped-model.h"

#include <sys/stat.h>

#include "setok-config.h"

#define SHIPPED_MODEL "/models/setokim-tiny"
static const char source_model[] = SETOK_SOURCE_DATADIR SHIPPED_MODEL;
static const char installed_model[] = SETOK_DATADIR SHIPPED_MODEL;

static bool
is_folder (const char *path)
{
  struct stat sb;
  return stat (path, &sb) == 0 && S_ISDIR (sb.st_mode);
}

const char *
shipped_model_path (void)
{
  return is_folder (source_model) ? source_model : installed_model;
}

bool
shipped_model_exists (void)
{
  return is_folder (shipped_model_path ());
}

const char *
shipped_model_source_path (void)
{
  return source_model;
}

const char *
shipped_model_installed_path (void)
{
  return installed_model;
}
