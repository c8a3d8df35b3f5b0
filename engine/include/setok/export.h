/* export.h — what libsetok exports. The library is built with hidden
 * visibility; SETOK_API marks the public functions (declared in these
 * headers, named setok_*). Everything else stays inside the library. */
#ifndef SETOK_EXPORT_H
#define SETOK_EXPORT_H

#if defined(SETOK_BUILDING_LIBRARY) && (defined(__GNUC__) || defined(__clang__))
#define SETOK_API __attribute__((visibility("default")))
#else
#define SETOK_API
#endif

#endif
