# Adds the infogravity gravity sampler to a CMake target of a llama.cpp build.
#
#   include(<prefix>/share/infogravity/llama.cpp/infogravity.cmake)   # after scripts/install-c.sh <prefix>
#   infogravity_add_to(my_target)
#
# The glue is compiled against the target's own llama.h; libinfogravity is linked from the
# install prefix (no network, no cargo at build time).
get_filename_component(INFOGRAVITY_GLUE_DIR "${CMAKE_CURRENT_LIST_FILE}" DIRECTORY)
get_filename_component(INFOGRAVITY_PREFIX "${INFOGRAVITY_GLUE_DIR}/../../.." ABSOLUTE)

# Found again when the prefix changes: a cached path would keep linking the library of an
# earlier prefix (a build tree reused across installs links a stale libinfogravity). A path the
# user gives (-DINFOGRAVITY_LIBRARY=...) is kept while the prefix stays.
if(NOT "${INFOGRAVITY_PREFIX}" STREQUAL "${INFOGRAVITY_LIBRARY_PREFIX}")
    unset(INFOGRAVITY_LIBRARY CACHE)
    set(INFOGRAVITY_LIBRARY_PREFIX "${INFOGRAVITY_PREFIX}" CACHE INTERNAL "prefix INFOGRAVITY_LIBRARY was found under")
endif()
find_library(INFOGRAVITY_LIBRARY infogravity PATHS "${INFOGRAVITY_PREFIX}/lib" NO_DEFAULT_PATH REQUIRED)

function(infogravity_add_to target)
    target_sources(${target} PRIVATE "${INFOGRAVITY_GLUE_DIR}/infogravity-sampler.cpp")
    target_include_directories(${target} PUBLIC "${INFOGRAVITY_PREFIX}/include" "${INFOGRAVITY_GLUE_DIR}")
    target_link_libraries(${target} PUBLIC "${INFOGRAVITY_LIBRARY}")
    target_compile_definitions(${target} PUBLIC LLAMA_USE_INFOGRAVITY)
endfunction()
