//! DataLoader keys of learning's tables (see `graphql::loaders`).

use super::model::{
    experience_report, gathering, gathering_attendance, learning_network, lesson, network_member, procurement_reuse,
    reused_item,
};
use crate::graphql::loaders::{by_id, children};

by_id!(NetworkById, learning_network);
by_id!(GatheringById, gathering);
by_id!(ReportById, experience_report);
by_id!(ReuseById, procurement_reuse);
children!(MembersOfNetwork, network_member, NetworkId, network_id);
children!(NetworkMembershipsOf, network_member, OrganizationId, organization_id);
children!(GatheringsOf, gathering, NetworkId, network_id);
children!(AttendanceAt, gathering_attendance, GatheringId, gathering_id);
children!(LessonsOf, lesson, ReportId, report_id);
children!(ReusedItemsOf, reused_item, ReuseId, reuse_id);
