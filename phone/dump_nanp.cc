/*
 * Build tool: prints the numbering-plan metadata of the +1 regions exactly as the installed
 * libphonenumber holds it (its compiled-in metadata blob, in the order it tries the regions), for
 * gen_nanp.py to prove the NANP fast path against. Reading the C++ library's own copy rather than
 * python3-phonenumbers' means the proof is about the patterns phone_normalize's fallback uses.
 *
 * One record per line, fields separated by tabs:
 *   region R
 *   leading R PATTERN
 *   desc R TYPE LENGTHS PATTERN      (LENGTHS: comma-separated possible lengths, or "-")
 *   same_mobile_fixed R 0|1
 *   parsing R NATIONAL_PREFIX_FOR_PARSING TRANSFORM_RULE INTERNATIONAL_PREFIX
 */
#include <cstdio>
#include <list>
#include <map>
#include <string>

#include <phonenumbers/phonemetadata.pb.h>
#include <phonenumbers/phonenumberutil.h>

namespace i18n
{
namespace phonenumbers
{
// Exported by libphonenumber.so (metadata.h is not installed): the serialized collection.
int metadata_size();
const void *metadata_get();
} // namespace phonenumbers
} // namespace i18n

using i18n::phonenumbers::PhoneMetadata;
using i18n::phonenumbers::PhoneMetadataCollection;
using i18n::phonenumbers::PhoneNumberDesc;
using i18n::phonenumbers::PhoneNumberUtil;

static void print_desc(const std::string &region, const char *type, const PhoneNumberDesc &desc)
{
    std::string lengths;
    for (int length : desc.possible_length())
        lengths += (lengths.empty() ? "" : ",") + std::to_string(length);
    std::printf("desc\t%s\t%s\t%s\t%s\n", region.c_str(), type, lengths.empty() ? "-" : lengths.c_str(),
                desc.has_national_number_pattern() ? desc.national_number_pattern().c_str() : "");
}

int main()
{
    PhoneMetadataCollection collection;
    if (!collection.ParseFromArray(i18n::phonenumbers::metadata_get(), i18n::phonenumbers::metadata_size())) {
        std::fprintf(stderr, "dump_nanp: libphonenumber's metadata does not parse\n");
        return 1;
    }
    std::map<std::string, const PhoneMetadata *> by_region;
    for (const PhoneMetadata &m : collection.metadata())
        by_region[m.id()] = &m;
    std::list<std::string> regions;
    PhoneNumberUtil::GetInstance()->GetRegionCodesForCountryCallingCode(1, &regions);
    for (const std::string &region : regions) {
        auto found = by_region.find(region);
        if (found == by_region.end()) {
            std::fprintf(stderr, "dump_nanp: no metadata for %s\n", region.c_str());
            return 1;
        }
        const PhoneMetadata &m = *found->second;
        std::printf("region\t%s\n", region.c_str());
        if (m.has_leading_digits())
            std::printf("leading\t%s\t%s\n", region.c_str(), m.leading_digits().c_str());
        // GetNumberTypeHelper's order.
        print_desc(region, "general", m.general_desc());
        print_desc(region, "premium_rate", m.premium_rate());
        print_desc(region, "toll_free", m.toll_free());
        print_desc(region, "shared_cost", m.shared_cost());
        print_desc(region, "voip", m.voip());
        print_desc(region, "personal_number", m.personal_number());
        print_desc(region, "pager", m.pager());
        print_desc(region, "uan", m.uan());
        print_desc(region, "voicemail", m.voicemail());
        print_desc(region, "fixed_line", m.fixed_line());
        print_desc(region, "mobile", m.mobile());
        std::printf("same_mobile_fixed\t%s\t%d\n", region.c_str(), m.same_mobile_and_fixed_line_pattern() ? 1 : 0);
        std::printf("parsing\t%s\t%s\t%s\t%s\n", region.c_str(), m.national_prefix_for_parsing().c_str(),
                    m.national_prefix_transform_rule().c_str(), m.international_prefix().c_str());
    }
    return 0;
}
