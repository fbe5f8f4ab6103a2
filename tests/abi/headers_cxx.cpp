// The public headers must compile as C++ (extern "C", no C-only constructs).
#include <mpq/mpq.h>

int main()
{
    return mpq_version_number() == MPQ_VERSION_NUMBER ? 0 : 1;
}
